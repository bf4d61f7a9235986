"""``migration-harness rehearse --from URL``: is it safe to run ``flask db upgrade`` on that database tonight?

1. The app and its migrations are loaded first (on a throwaway SQLite file, as ``run`` does), so a bad ``--app``
   costs nothing and never reaches production.
2. Production is read once, read-only (:mod:`harness.rehearse.source`): its revision(s), its schema, and with
   ``--sample-rows N`` up to N rows per table.
3. On a throwaway server of the same dialect and major version, two scratch databases, at once:
   *drift* — the migrations upgrade one to production's revision(s), and production's schema is compared with it
   (:mod:`harness.rehearse.drift`); *rehearsal* — production's schema and rows are recreated in the other
   (:mod:`harness.rehearse.copy`), then each pending migration runs one at a time (worker mode ``rehearse``),
   then ``schema_matches_models``.
4. Proofs (:mod:`harness.rehearse.proofs`): what each pending step did on the copy that existing rows can make
   fail (a NOT NULL, a unique constraint, a narrower type, a foreign key, a CHECK, a data migration...) becomes a
   read-only aggregate asked of production itself, in a second short read-only snapshot.
5. One verdict: ``safe`` only when there is no drift, every pending step passed on the copy, every step whose
   outcome depends on existing rows is proved on production's rows, and the schema then matches the models;
   ``unsafe`` when something fails; ``unproved`` when nothing failed but something could not be proved.

>>> result = rehearse(RehearseConfig(app="app:create_app", from_url="postgresql://ro@db/prod"))  # doctest: +SKIP
>>> result.verdict  # doctest: +SKIP
'safe'
"""
from __future__ import annotations

import datetime
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..backends import get_backend
from ..backends.base import Server, new_run_id
from ..config import DatabaseSettings, build_config, server_urls
from ..estimate.settings import EstimateSettings
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError, DatabaseUnavailable
from ..chain.history import ancestors
from ..run.process import WorkerOutcome, run_worker
from ..config.redact import secrets_of
from ..results import FAILED, PASSED, SKIPPED, CheckResult
from ..run.runner import History, Preflight, _in_threads, _spec, started_preflight
from ..chain.steps import describe_error
from . import copy, drift
from .drift import DriftFinding
from ..estimate.fit import budget_reasons
from ..run.faults import last_step, worker_killed
from .estimates import estimate_pending, unproved as unproved_estimates, with_estimates
from .proofs import FAILS, UNPROVED as UNPROVED_PROOF, Proof, derive, summary
from .source import ProductionMoved, Source, ask, locate_sqlite, parse_source_url, read_source

SAFE, UNSAFE, UNPROVED = "safe", "unsafe", "unproved"
NOT_RUN = "not_run"
#: exit code of an ``unproved`` verdict: nothing failed, but something could not be proved
EXIT_UNPROVED = 5


@dataclass(frozen=True)
class RehearseConfig:
    """Everything one ``rehearse`` needs (``app`` / ``migrations`` resolved as for ``run``)."""

    from_url: str
    app: str | None = None
    migrations: str | None = None
    image: str | None = None
    sample_rows: int = 0
    step_timeout_s: float | None = None
    cwd: str | None = None
    #: ``--ignore-table`` (pyproject's ignore rules apply too, as for run)
    ignore_tables: tuple[str, ...] = ()
    #: the app's interpreter (``--python``), as for run
    python: str | None = None
    #: ``--lock-budget``, ``--estimate-rows`` (``None``: ``--no-estimate``)
    estimates: EstimateSettings | None = EstimateSettings()


@dataclass(frozen=True)
class StepReport:
    """One pending migration as it ran on the copy of production."""

    revision: str
    message: str
    status: str  # passed, failed, not_run
    duration_s: float = 0.0
    rows: int = 0  # rows its statements changed (sum of the cursors' rowcounts)
    error: str | None = None
    #: what it did on the copy that existing rows can make fail (facts of harness.rehearse.record)
    operations: tuple[dict[str, Any], ...] = ()
    #: the questions asked of production about those operations, answered
    proofs: tuple[Proof, ...] = ()

    @property
    def proof(self) -> str:
        """``none`` (nothing depends on existing rows), ``proved``, ``fails``, ``unproved``; ``not_run``."""
        return NOT_RUN if self.status == NOT_RUN else summary(self.proofs)
    #: how long it would hold its locks at production's size (:meth:`StepEstimate.to_dict`), when estimated
    estimate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "message": self.message, "status": self.status,
                "duration_s": round(self.duration_s, 4), "rows": self.rows, "error": self.error,
                "proof": self.proof, "proofs": [p.to_dict() for p in self.proofs],
                "estimate": self.estimate}


@dataclass(frozen=True)
class RehearseResult:
    """The verdict and everything it rests on; ``to_dict`` is the JSON report (see the README)."""

    verdict: str
    exit_code: int
    reasons: tuple[str, ...]
    source: dict[str, Any]
    throwaway: dict[str, Any]
    drift_status: str  # passed, failed, error, skipped
    drift: tuple[DriftFinding, ...]
    pending: tuple[str, ...]
    steps: tuple[StepReport, ...]
    schema_check: CheckResult | None
    notes: tuple[str, ...] = ()
    run_id: str = ""
    started_at: str = ""
    duration_s: float = 0.0
    drift_error: str | None = None
    #: drift findings an ignore rule matched (``--ignore-table``, pyproject), each with the rule's reason
    drift_ignored: tuple[dict[str, Any], ...] = ()
    #: what could not be proved (the verdict is ``unproved`` when this is all there is)
    unproved: tuple[str, ...] = ()
    #: the app's side, as the worker that loaded the app saw it (``--python``); empty: the harness's own
    app_versions: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "command": "rehearse", "verdict": self.verdict, "exit_code": self.exit_code,
                "reasons": list(self.reasons), "run_id": self.run_id, "started_at": self.started_at,
                "duration_s": round(self.duration_s, 3), "source": self.source, "throwaway": self.throwaway,
                "drift": {"status": self.drift_status, "error": self.drift_error,
                          "findings": [f.to_dict() for f in self.drift],
                          "ignored": [dict(d) for d in self.drift_ignored]},
                "pending": list(self.pending), "steps": [s.to_dict() for s in self.steps],
                "schema_matches_models": self.schema_check.to_dict() if self.schema_check else None,
                "unproved": list(self.unproved), "notes": list(self.notes)}


@dataclass
class _Job:
    """What one throwaway-side job found (filled in its own thread)."""

    findings: list[DriftFinding] = field(default_factory=list)
    error: str | None = None
    steps: list[StepReport] = field(default_factory=list)
    schema_check: CheckResult | None = None
    copied: dict[str, int] = field(default_factory=dict)
    #: its worker was killed by a signal (SIGKILL from outside, the out-of-memory killer): why, else ``None``
    killed: str | None = None


def rehearse(config: RehearseConfig, progress: Callable[[str], None] | None = None,
             gate: Preflight | None = None) -> RehearseResult:
    """Rehearse the pending migrations of ``config.app`` against the database at ``config.from_url``. ``gate``:
    the app's preflight, already started by the caller on the same app options (the CLI starts it before it
    imports this module); its run id is the rehearsal's."""
    say = progress or (lambda text: None)
    started = time.monotonic()
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    if config.sample_rows < 0:
        raise ConfigError(f"--sample-rows must be 0 or more, not {config.sample_rows}")
    _, dialect, backend = parse_source_url(config.from_url, check_file=False)  # a bad URL: usage error, first
    run_config = build_config(app=config.app, migrations=config.migrations, db=(dialect,), checks=("upgrade",),
                              step_timeout_s=config.step_timeout_s, cwd=config.cwd,
                              ignore_tables=config.ignore_tables, python=config.python)
    run_id = gate.config.run_id if gate is not None and gate.config.run_id else run_config.run_id or new_run_id()
    run_config = replace(run_config, run_id=run_id)
    with nullcontext(gate) if gate is not None else started_preflight(run_config, run_id, multidb=False,
                                                                       keep=False) as gate:
        gate.wait()  # production is not read before the app loaded: a bad --app never reaches it
        history = gate.history
        assert history is not None
        from_url = locate_sqlite(config.from_url, history.sqlite_base, run_config.cwd)
        source = read_source(from_url, config.sample_rows)
        say(f"production {source.url} ({source.server_version}) is at {', '.join(source.revisions) or 'base'}")
        known = {r.revision for r in history.revisions}
        unknown = [r for r in source.revisions if r not in known]
        applied: set[str] = set()
        for revision in source.revisions:
            if revision in known:
                applied |= ancestors(list(history.revisions), revision)
        pending = tuple(r.revision for r in history.revisions if r.revision not in applied)
        image = (config.image or os.environ.get(f"HARNESS_{dialect.upper()}_IMAGE")
                 or backend.image_for_version(source.version_info, source.server_version))
        settings = DatabaseSettings(dialect, image=image if dialect != "sqlite" else None,
                                    url=server_urls(run_config.cwd).get(dialect))
        notes: list[str] = []
        if config.image and settings.url:
            notes.append(f"--image {config.image} was not used: HARNESS_{dialect.upper()}_URL gives the throwaway "
                         "server (as for run); unset it to rehearse on a container")
        if config.sample_rows == 0:
            notes.append("no rows were copied (--sample-rows 0): the rehearsal ran on production's schema; what "
                         "depends on existing rows was asked of production itself (proofs)")
        drift_job, rehearsal = _Job(), _Job()
        proofs_error: str | None = None
        estimates: list[Any] = []
        throwaway: dict[str, Any] = {"kind": None, "image": None, "server_version": ""}
        if unknown:  # which steps are pending is unknown: nothing to build or rehearse, no server started
            notes.append("drift comparison and rehearsal not run: production's revision is not in the history")
        else:
            with backend.server(settings, run_id) as server:
                throwaway = _describe_server(server, settings, source, notes)
                say(f"throwaway server: {throwaway['kind']} {throwaway.get('image') or ''} ({server.server_version})")
                ctx = (run_config, server, dialect, run_id, history, source, say)
                _in_threads([lambda: _drift(drift_job, *ctx), lambda: _rehearse(rehearsal, pending, *ctx)],
                            "rehearse")
                _raise_if_worker_killed(dialect, drift_job, rehearsal)
                _raise_if_throwaway_failed(server, settings, drift_job, rehearsal)
                estimates = estimate_pending(config.estimates, run_config, server, source, pending, run_id, say, notes)
            proofs_error = _prove(rehearsal, from_url, source, backend, dialect, say)
    kept, ignored = drift.apply_ignore_rules(drift_job.findings, run_config.ignore, dialect)
    findings = [drift.unknown_revision(r) for r in unknown] + kept
    steps = tuple(rehearsal.steps) + tuple(
        StepReport(r, _message(history, r), NOT_RUN) for r in pending[len(rehearsal.steps):]) if not unknown else ()
    schema = rehearsal.schema_check
    drift_job.findings = kept
    steps = with_estimates(steps, estimates)
    reasons = _reasons(unknown, drift_job, rehearsal, steps, schema, source)
    labels = {r: _label(history, r) for r in pending}
    if config.estimates is not None:
        reasons += budget_reasons(estimates, config.estimates.lock_budget_s, labels)
    unproved = _unproved(steps, history) + ([proofs_error] if not unknown and proofs_error else [])
    unproved += unproved_estimates(estimates, labels) if config.estimates is not None else []
    verdict = UNSAFE if reasons else UNPROVED if unproved else SAFE
    source_info = {"url": source.url, "dialect": dialect, "server_version": source.server_version,
                   "revisions": list(source.revisions), "tables": len(source.metadata.tables) - 1,
                   "sample_rows": config.sample_rows, "copied_rows": rehearsal.copied,
                   "read_only": backend.read_only_how, "statements": source.statements,
                   "table_sizes": {name: size.to_dict() for name, size in sorted(source.sizes.items())},
                   "table_sizes_error": source.sizes_error}
    drift_status = "error" if drift_job.error else FAILED if findings else PASSED
    exit_code = {SAFE: EXIT_OK, UNPROVED: EXIT_UNPROVED}.get(verdict, EXIT_CHECK_FAILED)
    return RehearseResult(verdict, exit_code, tuple(reasons), source_info,
                          throwaway, drift_status, tuple(findings), pending, steps,
                          schema, tuple(notes), run_id, started_at, time.monotonic() - started, drift_job.error,
                          tuple(ignored), tuple(unproved), dict(history.versions))


def _message(history: History, revision: str) -> str:
    return next((r.message for r in history.revisions if r.revision == revision), "")


def _label(history: History, revision: str) -> str:
    message = _message(history, revision)
    return f"{revision} ({message})" if message else revision


def _describe_server(server: Server, settings: DatabaseSettings, source: Source, notes: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": server.kind, "image": settings.image if server.kind == "container" else None,
                            "server_version": server.server_version}
    admin = getattr(server, "admin_url", None)
    if admin is not None:
        production = make_url(source.url)
        if (admin.host, admin.port) == (production.host, production.port):
            notes.append(f"the throwaway server (HARNESS_{settings.dialect.upper()}_URL) is the production server "
                         "itself: the scratch databases mharness_* were made (and dropped) there; nothing was "
                         "written to the production database")
    if server.server_version.split(".")[0] != source.server_version.split(".")[0]:
        notes.append(f"the throwaway server is {server.server_version}, production {source.server_version}: a "
                     "step can behave differently across major versions (pass --image)")
    return info


def _worker(run_config: Any, url: str, dialect: str, run_id: str, revisions: list[str], compare_models: bool,
            say: Callable[[str], None]) -> WorkerOutcome:
    spec = {**_spec(run_config, url, dialect, "rehearse", (), run_id),
            "rehearse": {"revisions": revisions, "compare_models": compare_models, "record": compare_models}}

    def on_event(event: dict[str, Any]) -> None:
        if compare_models and event.get("event") == "rehearse_step":
            state = "ok" if event["passed"] else "FAILED"
            say(f"  {state} {event['revision']} {event['duration_s']:.3f}s {event['rows']} rows")

    outcome = run_worker(spec, cwd=run_config.cwd, step_timeout_s=run_config.step_timeout_s,
                         secrets=secrets_of(url), on_event=on_event)
    outcome.raise_fatal()  # the app or its migrations cannot be used here (e.g. the app ignores DATABASE_URL)
    return outcome


def _ran(outcome: WorkerOutcome, dialect: str) -> tuple[list[StepReport], str | None]:
    """The steps a worker reported, and why it stopped early if it did (a time limit, a crash)."""
    steps = [StepReport(e["revision"], e["message"], PASSED if e["passed"] else FAILED, e["duration_s"], e["rows"],
                        e["error"], tuple(e.get("operations", ()))) for e in outcome.of_kind("rehearse_step")]
    if outcome.finished:
        return steps, None
    announced = outcome.of_kind("step")
    if outcome.timed_out_after_s is not None and announced:
        step = announced[-1]
        why = (f"did not finish within {outcome.timed_out_after_s:g}s on {dialect} (hung, or waiting for a "
               "lock); it was stopped")
        if step["revision"] not in {s.revision for s in steps}:
            steps.append(StepReport(step["revision"], step.get("message", ""), FAILED, outcome.timed_out_after_s,
                                    0, why))
        return steps, why
    return steps, outcome.crash or "the worker stopped without a verdict"


def _ancestry(history: History, source: Source) -> list[str]:
    wanted: set[str] = set()
    for revision in source.revisions:
        wanted |= ancestors(list(history.revisions), revision)
    return [r.revision for r in history.revisions if r.revision in wanted]


def _drift(job: _Job, run_config: Any, server: Server, dialect: str, run_id: str, history: History, source: Source,
           say: Callable[[str], None]) -> None:
    """Build production's revision(s) from the migrations on a fresh database and compare production with it."""
    with server.scratch_database() as url:
        outcome = _worker(run_config, url, dialect, run_id, _ancestry(history, source), False, say)
        job.killed = _killed(outcome, dialect, "the build of production's revision")
        steps, stopped = _ran(outcome, dialect)
        failed = next((s for s in steps if s.status == FAILED), None)
        if failed or stopped:
            where = f"upgrade to {_label(history, failed.revision)}: {failed.error}" if failed else stopped
            job.error = f"the migrations do not build production's revision on an empty database ({where})"
            return
        try:
            job.findings = drift.compare(source.metadata, url, get_backend(dialect))
        except sa.exc.SQLAlchemyError as exc:
            job.error = f"production's schema could not be compared with the migrations': {describe_error(exc)}"


def _rehearse(job: _Job, pending: tuple[str, ...], run_config: Any, server: Server, dialect: str, run_id: str,
              history: History, source: Source, say: Callable[[str], None]) -> None:
    """Recreate production in a scratch database and run the pending migrations on it, then the models check."""
    with server.scratch_database() as url:
        try:
            job.copied = copy.recreate(source, url, get_backend(dialect))
        except sa.exc.SQLAlchemyError as exc:  # e.g. a type of an extension the throwaway server does not have
            job.error = f"production's schema could not be recreated on the throwaway server: {describe_error(exc)}"
            job.schema_check = CheckResult("schema_matches_models", SKIPPED, None, "not run: no copy of production")
            return
        outcome = _worker(run_config, url, dialect, run_id, list(pending), True, say)
        job.killed = _killed(outcome, dialect, "the rehearsal on the copy of production")
        job.steps, stopped = _ran(outcome, dialect)
        if stopped and not any(s.status == FAILED for s in job.steps):
            job.error = f"the rehearsal stopped before its end: {stopped}"
        checks = [CheckResult.from_dict(e) for e in outcome.of_kind("check")]
        job.schema_check = checks[0] if checks else CheckResult(
            "schema_matches_models", SKIPPED, None, "not run: a pending step failed" if not stopped
            else f"not run: {stopped}")


def _prove(rehearsal: _Job, from_url: str, source: Source, backend: Any, dialect: str,
           say: Callable[[str], None]) -> str | None:
    """Ask production the questions of every step that ran on the copy (read-only, a snapshot of their own) and
    keep the answers with the steps; what stopped the proofs, if anything (then they are all unproved)."""
    ran = [(step.revision, step.operations) for step in rehearsal.steps]
    try:
        labels = {step.revision: f"{step.revision} ({step.message})" if step.message else step.revision
                  for step in rehearsal.steps}
        questions = derive(ran, source.metadata, backend, dialect, rehearsal.copied, labels)
    except Exception as exc:  # noqa: BLE001 - a harness bug costs the proofs (unproved), never the verdict's honesty
        return f"the proofs' questions could not be derived ({type(exc).__name__}: {exc}); please report it"
    if not any(questions.values()):
        return None
    say(f"asking production {sum(len(q) for q in questions.values())} question(s), read-only")
    try:
        answered = ask(from_url, source, questions)
    except ProductionMoved as exc:
        return str(exc)
    rehearsal.steps = [replace(step, proofs=tuple(answered.get(step.revision, ()))) for step in rehearsal.steps]
    return None


def _unproved(steps: tuple[StepReport, ...], history: History) -> list[str]:
    """What keeps the verdict from ``safe`` when nothing failed: each proof that could not decide."""
    return [f"{_label(history, step.revision)}: {proof.text}" for step in steps for proof in step.proofs
            if proof.decides == UNPROVED_PROOF]


def _killed(outcome: WorkerOutcome, dialect: str, job: str) -> str | None:
    """Why the worker of ``job`` ended by a signal (SIGKILL from outside, the out-of-memory killer), else ``None``."""
    if outcome.killed_by is None:
        return None
    step = last_step(outcome)
    return worker_killed(outcome, f"{step}, in {job}" if step else job, dialect)


def _raise_if_worker_killed(dialect: str, *jobs: _Job) -> None:
    """A worker killed from outside proves nothing about the step it was in: no verdict (``error``, exit 3), never
    ``unsafe`` (nor ``safe``)."""
    killed = next((job.killed for job in jobs if job.killed), None)
    if killed:
        raise DatabaseUnavailable(dialect, f"no verdict: {killed}")


def _raise_if_throwaway_failed(server: Server, settings: DatabaseSettings, *jobs: _Job) -> None:
    """A throwaway server that died, froze or filled up during the drift build or the rehearsal proves nothing
    about the pending migrations: no verdict (``error``, exit 3), never ``unsafe`` blamed on a step."""
    problems = [CheckResult("rehearsal", FAILED, s.revision, f"upgrade to {s.revision} failed on {settings.dialect}: "
                            f"{s.error or ''}") for job in jobs for s in job.steps
                if s.status == FAILED] + [CheckResult("rehearsal", FAILED, None, job.error) for job in jobs if job.error]
    if not problems:
        return
    from ..run.faults import classify

    faults = [c for c in classify(problems, WorkerOutcome(finished=True), server, settings).results if c.fault]
    if faults:
        raise DatabaseUnavailable(settings.dialect, f"no verdict: {faults[0].message}")


def _reasons(unknown: list[str], drift_job: _Job, rehearsal: _Job, steps: tuple[StepReport, ...],
             schema: CheckResult | None, source: Source) -> list[str]:
    """Why the verdict is ``unsafe``: every one of them; none means ``safe``. What could not be verified (a
    rehearsal that stopped, a schema that could not be copied) is a reason too: not known safe is not safe."""
    reasons = [f"revision {r} in production is not in the migrations history" for r in unknown]
    for error in (drift_job.error, rehearsal.error):
        if error:
            reasons.append(error)
    if drift_job.findings:
        reasons.append(f"{len(drift_job.findings)} drift finding(s): production differs from what its migrations "
                       f"build at {', '.join(source.revisions)}")
    for step in steps:
        label = f"{step.revision} ({step.message})" if step.message else step.revision
        if step.status == FAILED:
            reasons.append(f"pending migration {label} failed on the copy of production: {step.error}")
        reasons.extend(f"pending migration {label} fails on production's rows: {proof.text}"
                       for proof in step.proofs if proof.decides == FAILS)
    if schema is not None and schema.status not in (PASSED, SKIPPED):
        reasons.append(f"after the pending migrations, schema_matches_models {schema.status}: {schema.message}")
    return reasons
