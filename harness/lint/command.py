"""``migration-harness lint``: check the inputs once, then per database (at once) render the offline SQL of the
pending revisions and lint it, and run the pending steps on a scratch database with rows to see what they do."""
from __future__ import annotations

import contextlib
import datetime
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .._version import __version__
from ..backends import get_backend
from ..config import DatabaseSettings, RunConfig
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNAVAILABLE, ConfigError, DatabaseUnavailable
from ..chain.history import window
from ..run.process import WorkerOutcome
from ..run.sessions import DatabaseSessions
from ..config.redact import secrets_of
from ..reports.report import version_fields
from ..estimate.settings import EstimateSettings
from ..run.preflight import started_preflight
from ..run.runner import Preflight, _in_threads, _spec
from .estimates import Production, estimate_database, lock_timeout_findings, read_production
from .findings import ERROR, Finding, at_least
from .observe import BEFORE_WINDOW, DEFAULT_ROWS
from .offline import offline_events, offline_findings, offline_sql, write_sql_files

#: ``schema_version`` of the lint JSON report; fields are only ever added within a version
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LintOptions:
    """What ``lint`` adds to the run settings (app, migrations, databases, ``--from`` / ``--to``, time limits)."""

    fail_on: str = ERROR
    rows: int = DEFAULT_ROWS
    observe: bool = True
    sql_dir: str | None = None
    disabled: tuple[str, ...] = ()
    #: squawk style rules turned on (``[tool.migration-harness.lint] enable``)
    enable: tuple[str, ...] = ()
    #: ``--sizes-from``, ``--lock-budget``, ``--estimate-rows``: lock durations at production's size
    estimates: EstimateSettings = EstimateSettings()


@dataclass(frozen=True)
class LintDatabase:
    """One database's part of the lint: how it was provided and what each pending step did there."""

    dialect: str
    backend: str
    server_version: str = ""
    #: ``ok``, ``error`` (could not be provided / the observation could not finish), ``skipped``
    status: str = "ok"
    message: str = ""
    observations: tuple[dict[str, Any], ...] = ()
    duration_s: float = 0.0
    #: per pending step, at production's size (``--sizes-from``; :meth:`StepEstimate.to_dict` plus ``revision``)
    estimates: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "backend": self.backend, "server_version": self.server_version,
                "status": self.status, "message": self.message, "duration_s": round(self.duration_s, 3),
                "observations": [dict(o) for o in self.observations],
                "estimates": [dict(e) for e in self.estimates]}


@dataclass(frozen=True)
class LintResult:
    findings: tuple[Finding, ...]
    databases: tuple[LintDatabase, ...]
    revisions: tuple[dict[str, Any], ...]
    fail_on: str
    exit_code: int
    run_id: str
    started_at: str
    sql_files: tuple[str, ...] = ()
    #: production's sizes (``--sizes-from``): :meth:`harness.lint.estimates.Production.to_dict`
    production: dict[str, Any] | None = None
    #: the lock budget the estimates were held to (``None`` without ``--sizes-from``)
    lock_budget_s: float | None = None
    #: the app's side, as the worker that loaded the app saw it (``--python``); empty: the harness's own
    app_versions: dict[str, str] = field(default_factory=dict)

    @property
    def failing(self) -> list[Finding]:
        """Findings at or above the threshold that no marker acknowledged: what makes ``lint`` exit 1."""
        return [f for f in self.findings if f.allowed is None and at_least(f.severity, self.fail_on)]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "command": "lint", "harness_version": __version__,
                **version_fields(self.app_versions),
                "ok": self.exit_code == EXIT_OK, "exit_code": self.exit_code, "fail_on": self.fail_on,
                "run_id": self.run_id, "started_at": self.started_at, "revisions": [dict(r) for r in self.revisions],
                "databases": [d.to_dict() for d in self.databases],
                "findings": [f.to_dict() for f in self.findings], "sql_files": list(self.sql_files),
                "production": self.production, "lock_budget_s": self.lock_budget_s}


def lint(config: RunConfig, options: LintOptions, say: Callable[[str], None] | None = None,
         gate: Preflight | None = None) -> LintResult:
    """Lint the pending revisions (``config.from_revision`` → ``config.to_revision``) on every selected database.
    ``gate``: the preflight, already started by the caller (:func:`harness.run.preflight.started_preflight`, with
    ``config.run_id``, ``multidb=False``, ``keep=options.observe``), which then ends it."""
    say = say or (lambda text: None)
    run_id = config.run_id or ""
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    from .allow import allowances_from_pyproject

    pyproject_allowances = allowances_from_pyproject(config.cwd)  # a bad entry is a usage error, before any work
    # the preflight runs while the servers start and each loads the app; its own worker goes on as SQLite's
    with (contextlib.nullcontext(gate) if gate is not None
          else started_preflight(config, run_id, multidb=False, keep=options.observe)) as gate:
        try:
            production = _production(options, config)
            jobs = [lambda s=s: _lint_database(s, config, options, run_id, say, gate, production)
                    for s in config.databases]
            parts = _in_threads(jobs, "lint")
        except BaseException:
            gate.wait()  # the preflight's own error (a bad --app) comes first
            raise
        history = gate.history
        assert history is not None
        pending = _pending(gate, config)
        if not pending.revisions:
            raise ConfigError(f"nothing to lint: no revision after {config.from_revision}")
    findings: list[Finding] = []
    sql_files: list[str] = []
    for database, found, files in parts:
        findings.extend(found)
        sql_files.extend(files)
    findings.extend(_source_findings(pending.revisions, [s.dialect for s in config.databases]))
    findings = _merge_evidence(findings)
    observed = [(p[0].dialect, o) for p in parts for o in p[0].observations]
    findings = lock_timeout_findings(findings, observed, pending.revisions, os.path.join(history.directory, "env.py"))
    findings = _relative(_acknowledged(findings, pyproject_allowances, options.disabled), config.cwd)
    databases = tuple(p[0] for p in parts)
    result = LintResult(tuple(findings), databases,
                        tuple(_revision_record(r, config.cwd) for r in pending.revisions),
                        options.fail_on, EXIT_OK, run_id, started_at, tuple(sql_files),
                        production.to_dict() if production else None,
                        options.estimates.lock_budget_s if production else None, dict(history.versions))
    return replace(result, exit_code=_exit_code(result))


def _revision_record(revision: Any, cwd: str) -> dict[str, Any]:
    path = os.path.relpath(revision.path, cwd) if os.path.isabs(revision.path) else revision.path
    return {"revision": revision.revision, "down_revisions": list(revision.down_revisions),
            "message": revision.message, "file": revision.path if path.startswith("..") else path}


def _exit_code(result: LintResult) -> int:
    """1 when a finding at ``fail_on`` or worse is not acknowledged, or a database's observation could not
    finish; else 3 when a database could not be provided (or every one was skipped); else 0."""
    if result.failing:
        return EXIT_CHECK_FAILED
    errors = [d for d in result.databases if d.status == "error"]
    if any(not d.message.startswith("unavailable") for d in errors):  # a step hung, a worker crashed
        return EXIT_CHECK_FAILED
    if errors or all(d.status == "skipped" for d in result.databases):
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _production(options: LintOptions, config: RunConfig) -> Production | None:
    """Production's sizes (``--sizes-from``), read once before any database is provided."""
    if not options.estimates.sizes_from:
        return None
    production = read_production(options.estimates.sizes_from)
    if production.dialect not in [s.dialect for s in config.databases]:
        raise ConfigError(f"--sizes-from is a {production.dialect} database, but lint runs on "
                          f"{', '.join(s.dialect for s in config.databases)} only (add --db {production.dialect})")
    return production


def _pending(gate: Preflight, config: RunConfig) -> Any:
    """The revisions to lint, once the preflight read the history (raises its error)."""
    gate.wait()
    assert gate.history is not None
    return window(list(gate.history.revisions), list(gate.history.heads), config.from_revision, config.to_revision)


_NOTHING = (LintDatabase("", ""), [], [])  # a job's result when there is nothing to lint (``lint`` says so)


def _lint_database(settings: DatabaseSettings, config: RunConfig, options: LintOptions, run_id: str,
                   say: Callable[[str], None], gate: Preflight, production: Production | None,
                   ) -> tuple[LintDatabase, list[Finding], list[str]]:
    """Offline SQL and its rules, then the observed run on a scratch database: both in one worker, so the app is
    loaded once (while the preflight runs; the render first, refused any connection; the observation on the
    scratch database made fresh again). Without a database (``--no-observe``, or it could not be provided) the SQL
    is rendered alone."""
    started = time.monotonic()
    dialect = settings.dialect
    kind = "url" if settings.url else ("file" if dialect == "sqlite" else "container")

    def alone() -> tuple[list[Finding], list[str]] | None:
        """The SQL rendered by a worker of its own (it needs no database); ``None``: nothing to lint."""
        if not _pending(gate, config).revisions:
            return None
        return _rendered(dialect, _offline(dialect, config, options, run_id), say)

    rendered: tuple[list[Finding], list[str]] | None = None
    if not options.observe:
        rendered = alone()
        if rendered is None:
            return _NOTHING
        return LintDatabase(dialect, kind, status="ok", message="not observed (--no-observe)",
                            duration_s=time.monotonic() - started), *rendered
    try:
        gate.wait_unless_failed()  # a bad --app found by the preflight starts no container
        with get_backend(dialect).server(settings, run_id) as server:
            spec = _spec(config, "", dialect, "observe", (), run_id)
            with DatabaseSessions(server, spec, config.cwd, config.step_timeout_s, secrets_of) as sessions:
                sessions.prestart(gate.take(settings))  # the app loads while the preflight runs (SQLite: its own)
                pending = _pending(gate, config)
                if not pending.revisions:
                    return _NOTHING
                sessions.expect_more = True  # the observation's fresh database is made while the SQL renders
                events = offline_events(sessions.run({"mode": "offline", "refuse_connections": True}),
                                        config.app, dialect, config.step_timeout_s)
                rendered = _rendered(dialect, _offline_findings(dialect, events, options), say)
                sessions.expect_more = False
                outcome = sessions.run({"mode": "observe", "rows": options.rows}, on_event=_announcer(dialect, say))
            estimated: tuple[list[Any], list[Finding], list[str]] = ([], [], [])
            if production and production.dialect == dialect and not _unfinished(outcome, dialect):
                estimated = estimate_database(config, server, dialect, run_id, options.estimates, production,
                                              pending.revisions, say)
            version = server.server_version
            fault = _environment_fault(outcome, server, settings)
            if fault:
                raise DatabaseUnavailable(dialect, fault)
    except DatabaseUnavailable as exc:
        if rendered is None:  # the SQL needs no database: rendered all the same
            rendered = alone()
            if rendered is None:
                return _NOTHING
        status = "skipped" if config.skip_unavailable else "error"
        return LintDatabase(dialect, kind, status=status, message=f"unavailable: {exc.reason}",
                            duration_s=time.monotonic() - started), *rendered
    findings, files = rendered
    findings += [_located(Finding.from_dict(e)) for e in outcome.of_kind("finding")]
    findings += estimated[1]
    problem = _unfinished(outcome, dialect) or "; ".join(estimated[2]) or None
    observations = tuple({k: v for k, v in e.items() if k != "event"} for e in outcome.of_kind("observation"))
    database = LintDatabase(dialect, kind, version, "error" if problem else "ok", problem or "", observations,
                            time.monotonic() - started,
                            tuple({"revision": e.revision, **e.to_dict()} for e in estimated[0]))
    say(f"{dialect}: {len(observations)} step(s) observed")
    return database, findings, files


#: the alembic operations an observed finding can come from, to point it at its line in the migration file
_OBSERVED_OPERATIONS: dict[str, tuple[str, ...]] = {
    "table-rewrite": ("alter_column", "add_column", "execute"),
    "narrow-type": ("alter_column", "execute"),
    "table-copy": ("alter_column", "add_column", "drop_column", "create_index", "create_foreign_key",
                   "create_unique_constraint", "create_check_constraint", "execute"),
    "inplace-rebuild": ("create_index", "add_column", "drop_column", "alter_column", "create_unique_constraint",
                        "create_foreign_key", "execute"),
    "blocks-writes": ("create_index", "create_foreign_key", "create_unique_constraint", "execute"),
    "access-exclusive-lock": ("add_column", "alter_column", "drop_column", "create_check_constraint",
                              "create_unique_constraint", "drop_constraint", "drop_index", "create_foreign_key",
                              "rename_table", "execute"),
    "batch-table-copy": ("batch_alter_table",),
}


def _located(finding: Finding) -> Finding:
    """An observed finding at the line of the ``op.*`` call on its table (else at ``def upgrade``): the call
    that renders its statement when the finding has one (MySQL's ALTERs), else any call of the operations that
    can cause it."""
    if finding.line is not None or not finding.file:
        return finding
    from .rules import operations_for
    from .source_rules import locate
    from .sqltext import Statement

    operations = _OBSERVED_OPERATIONS.get(finding.rule, ())
    if finding.statement:
        statement = Statement(finding.statement, 0, 0)
        # the SQL rules' own mapping of a statement to its operation (ADD CONSTRAINT ... CHECK: create_check_...)
        as_rule = "constraint-without-not-valid" if "ADD CONSTRAINT" in statement.upper else finding.rule
        operations = operations_for(as_rule, statement) or operations
    names = [finding.table, finding.details.get("column")]
    return replace(finding, line=locate(finding.file, operations, names))


#: observed lock findings that a rule on the SQL already names for the same table: the rule says what and what to
#: do instead, the observation is its evidence (kept in the rule's finding, not said twice)
_EVIDENCE_FOR = {"access-exclusive-lock", "blocks-writes"}


def _merge_evidence(findings: list[Finding]) -> list[Finding]:
    """One finding per cause: an observed lock on a table goes into the SQL rule's finding about that same table
    in the same revision and database (``details.observed_lock``, and said in its message)."""
    by_place: dict[tuple[str, str, str], list[int]] = {}
    for index, finding in enumerate(findings):
        if finding.source != "observed" and finding.table and finding.severity != "info":
            by_place.setdefault((finding.database, finding.revision, finding.table), []).append(index)
    out = list(findings)
    dropped: set[int] = set()
    for index, finding in enumerate(findings):
        if finding.rule not in _EVIDENCE_FOR or not finding.table:
            continue
        targets = by_place.get((finding.database, finding.revision, finding.table))
        if not targets:
            continue
        lock = finding.details.get("lock", "")
        for target in targets:
            rule = out[target]
            out[target] = replace(rule, message=f"{rule.message} (observed: holds {lock} on {finding.table} until "
                                                f"the step commits)",
                                  details={**rule.details, "observed_lock": lock})
        dropped.add(index)
    return [f for i, f in enumerate(out) if i not in dropped]


def _announcer(dialect: str, say: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") != "step":
            return
        if event.get("check") == "lint":
            say(f"{dialect}: observing {event['revision']} ({event.get('message', '')})")
        elif event.get("check") == BEFORE_WINDOW:
            say(f"{dialect}: applying {event['revision']} ({event.get('message', '')}), before --from: not observed")
    return on_event


def _environment_fault(outcome: WorkerOutcome, server: Any, settings: DatabaseSettings) -> str | None:
    """Why the observation says nothing about the migrations (the throwaway server died, froze or filled up, the
    worker was killed), asked of the server itself: then its ``step-fails`` is no finding, the database is
    ``error`` (exit 3), not a failure blamed on a revision."""
    from ..run.faults import classify, worker_killed
    from ..results import CheckResult

    if outcome.killed_by is not None:
        return worker_killed(outcome, "the observation", settings.dialect)
    failed = [CheckResult("observation", "error", e.get("revision"), e.get("message", ""))
              for e in outcome.of_kind("finding") if e.get("rule") == "step-fails"]
    if not failed and (outcome.finished or outcome.of_kind("fatal")):
        return None
    if not failed:  # stopped: a time limit, a crash
        failed = [CheckResult("observation", "error", None, outcome.crash or "")]
    faults = [c for c in classify(failed, outcome, server, settings).results if c.fault]
    return faults[0].message if faults else None


def _unfinished(outcome: WorkerOutcome, dialect: str) -> str | None:
    """Why the observation did not finish, if it did not (the app would not load, a step hung, a crash)."""
    fatal = outcome.of_kind("fatal")
    if fatal:
        return fatal[0]["message"]
    if outcome.timed_out_after_s is not None:
        steps = outcome.of_kind("step")
        where = f" in the step to {steps[-1]['revision']}" if steps else ""
        return f"stopped after {outcome.timed_out_after_s:g}s{where} on {dialect} (hung, or waiting for a lock)"
    if not outcome.finished:
        return outcome.crash or "the worker stopped without a verdict"
    return None


def _rendered(dialect: str, found: tuple[list[Finding], list[str]],
              say: Callable[[str], None]) -> tuple[list[Finding], list[str]]:
    """``found`` (the offline findings and ``--sql-dir`` files), once it has said how the rendering went."""
    findings, _ = found
    unrendered = sorted({f.revision for f in findings if f.rule == "offline-sql-failed"})
    say(f"{dialect}: offline SQL of {len(unrendered)} revision(s) could not be rendered ({', '.join(unrendered)}); "
        "the rest rendered and linted" if unrendered else f"{dialect}: offline SQL rendered and linted")
    return found


def _offline(dialect: str, config: RunConfig, options: LintOptions, run_id: str) -> tuple[list[Finding], list[str]]:
    """The offline SQL of each pending revision on ``dialect``, rendered by a worker of its own (no database)."""
    events = offline_sql(config.app, config.migrations, dialect, config.from_revision, config.to_revision,
                         config.cwd, run_id, config.step_timeout_s, config.python)
    return _offline_findings(dialect, events, options)


def _offline_findings(dialect: str, events: list[dict[str, Any]],
                      options: LintOptions) -> tuple[list[Finding], list[str]]:
    """A revision that cannot be rendered is a finding; the rest is linted (squawk on PostgreSQL, the harness's
    own rules elsewhere), and written to ``--sql-dir``."""
    from .rules import sql_findings

    findings = offline_findings(dialect, events)
    for event in events:
        if event.get("sql") and not event.get("error"):
            findings.extend(sql_findings(dialect, event["revision"], event["sql"], event.get("file"),
                                         enable=options.enable))
    files = [str(p) for p in write_sql_files(options.sql_dir, dialect, events)] if options.sql_dir else []
    return findings, files


def _source_findings(revisions: list[Any], dialects: list[str]) -> list[Finding]:
    from .source_rules import source_findings

    found: list[Finding] = []
    for revision in revisions:
        found.extend(source_findings(revision.revision, revision.path, dialects))
    return found


def _relative(findings: list[Finding], cwd: str) -> list[Finding]:
    """Migration files relative to the working directory (a GitHub annotation needs the repository's path)."""
    out = []
    for finding in findings:
        if finding.file and os.path.isabs(finding.file):
            try:
                rel = os.path.relpath(finding.file, cwd)
            except ValueError:
                rel = finding.file
            if not rel.startswith(".."):
                finding = replace(finding, file=rel)
        out.append(finding)
    return out


def _acknowledged(findings: list[Finding], pyproject_allowances: list[Any], disabled: tuple[str, ...]) -> list[Finding]:
    """Drop disabled rules, mark what a marker in the migration file or a pyproject entry allows, and keep a
    stable order: by revision (chain order kept by the caller), database, severity."""
    from .allow import allowances_from_file, apply_allowances

    kept = [f for f in findings if f.rule not in disabled]  # [tool.migration-harness.lint] disable
    by_file: dict[str, list[Any]] = {}
    for finding in kept:
        if finding.file and finding.file not in by_file and Path(finding.file).exists():
            by_file[finding.file] = allowances_from_file(finding.file)
    allowances = [a for items in by_file.values() for a in items] + list(pyproject_allowances)
    return apply_allowances(kept, allowances)
