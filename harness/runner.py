"""Orchestrate a run: check the inputs once, then for each database provide a server, give every worker session
its own scratch database, and turn what the workers say into results."""
from __future__ import annotations

import datetime
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

from .backends import Server, get_backend
from .backends.base import SCRATCH_PREFIX, new_run_id
from .clean import registered_run
from .config import DatabaseSettings, RunConfig
from .errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNAVAILABLE, ConfigError, DatabaseUnavailable
from .faults import WORKER_KILLED, classify, wait_for_server, worker_killed
from .history import Revision
from .steps import step_phrase
from .process import WorkerOutcome, cancel_workers, reset_cancel, run_worker
from .redact import secrets_of
from .checks.data import MAX_SUSPECTS, probe_spec
from .results import (ERROR, FAILED, PASSED, SKIPPED, CheckResult, DatabaseResult, RunResult, database_status,
                      link_root_causes)

#: Worker sessions per database, each on a fresh scratch database, with the checks it runs in order.
SESSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chain", ("single_head", "upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade",
               "leaves_no_trace")),
    ("stairway", ("stairway",)),
    ("data", ("data",)),
)
#: a check needs these to have run first in its session (the chain must be at head, or back at base)
NEEDS: dict[str, tuple[str, ...]] = {
    "schema_matches_models": ("upgrade",), "no_pending_autogenerate": ("upgrade",),
    "downgrade": ("upgrade",), "leaves_no_trace": ("upgrade", "downgrade"),
}


def plan_sessions(selected: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The checks each session runs for a ``--checks`` selection, with what they need; empty sessions dropped."""
    wanted = set(selected)
    for name in selected:
        wanted.update(NEEDS.get(name, ()))
    plans = [tuple(c for c in checks if c in wanted) for _, checks in SESSIONS]
    return [p for p in plans if p]


class Reporter(Protocol):
    """Receives progress as it happens (the CLI prints it)."""

    def database_started(self, settings: DatabaseSettings) -> None: ...
    def step_started(self, dialect: str, step: dict[str, Any]) -> None: ...
    def sql_statement(self, dialect: str, statement: str) -> None: ...
    def check_finished(self, dialect: str, check: CheckResult) -> None: ...
    def database_finished(self, result: DatabaseResult) -> None: ...


class SilentReporter:
    def database_started(self, settings: DatabaseSettings) -> None:
        pass

    def step_started(self, dialect: str, step: dict[str, Any]) -> None:
        pass

    def sql_statement(self, dialect: str, statement: str) -> None:
        pass

    def check_finished(self, dialect: str, check: CheckResult) -> None:
        pass

    def database_finished(self, result: DatabaseResult) -> None:
        pass


@dataclass(frozen=True)
class History:
    """What the preflight learnt about the migrations: ordered revisions and heads."""

    revisions: tuple[Revision, ...]
    heads: tuple[str, ...]
    directory: str
    #: where Flask-SQLAlchemy resolves the app's relative ``sqlite:///name.db`` paths (its instance folder on 3.x)
    sqlite_base: str = ""
    #: where the app ran: Python's and its packages' versions in the app's interpreter
    versions: dict[str, str] = field(default_factory=dict)


def _spec(config: RunConfig, url: str, dialect: str, mode: str, checks: tuple[str, ...], run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "app": config.app, "migrations": config.migrations, "url": url, "dialect": dialect,
            "mode": mode, "checks": list(checks), "ignore": [r.to_dict() for r in config.ignore],
            "from": config.from_revision, "to": config.to_revision,
            "allow_multiple_heads": config.allow_multiple_heads, "lock_timeout_s": config.lock_timeout_s,
            "echo_sql": config.echo_sql, "python": config.python, "drivers": _driver_urls(config),
            "baseline": config.baseline, "env": [list(pair) for pair in config.env]}


def _driver_urls(config: RunConfig) -> list[str]:
    """The start of each server database's URL (``postgresql+psycopg2://``): the worker checks that the app's
    environment has each driver (:mod:`harness.floor`), so the preflight names a missing one before any database
    starts."""
    schemes = []
    for settings in config.databases:
        if settings.dialect == "sqlite":
            continue
        scheme = (settings.url or "").split("://")[0]
        if "+" not in scheme:
            scheme = f"{settings.dialect}+{get_backend(settings.dialect).default_driver}"
        schemes.append(f"{scheme}://")
    return schemes


def preflight(config: RunConfig, run_id: str) -> History:
    """Load the app and read the revision graph on a throwaway SQLite file, before any database is started,
    so a bad ``--app`` or a broken migrations directory costs no container and leaves nothing behind."""
    directory = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_preflight_"))
    try:
        url = f"sqlite:///{directory / 'preflight.db'}"
        outcome = run_worker(_spec(config, url, "sqlite", "inspect", config.checks, run_id), cwd=config.cwd,
                             step_timeout_s=config.step_timeout_s, secrets=[])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    outcome.raise_fatal()
    history = outcome.of_kind("history")
    if not history:
        reason = outcome.crash or f"loading the app took longer than {config.step_timeout_s:g}s"
        raise ConfigError(f"cannot load the app {config.app}: {reason}")
    h = history[0]
    return History(tuple(Revision.from_dict(r) for r in h["revisions"]), tuple(h["heads"]), h["directory"],
                   h.get("sqlite_base", ""), h.get("versions", {}))


def _session_results(outcome: WorkerOutcome, planned: tuple[str, ...], dialect: str) -> list[CheckResult]:
    """Checks the worker reported, then a verdict for each planned check it never reached."""
    results = [CheckResult.from_dict(e) for e in outcome.of_kind("check")]
    missing = [name for name in planned if name not in {r.name for r in results}]
    if not missing:
        return results
    fatal = outcome.of_kind("fatal")
    steps = outcome.of_kind("step")
    step = steps[-1] if steps else None  # the step the worker was in when it stopped answering
    during = ""
    if step:
        label = f"{step['revision']} ({step['message']})" if step.get("message") else step["revision"]
        during = step_phrase(step["direction"], label, step.get("parents", ()))
    revision = step["revision"] if step else None
    fault = None
    if outcome.killed_by is not None:  # SIGKILL from outside, or the out-of-memory killer
        reason, fault = worker_killed(outcome, during or "the app's start-up", dialect), WORKER_KILLED
        revision = None
    elif outcome.timed_out_after_s is not None:
        if step:
            reason = (f"{during} did not finish within {outcome.timed_out_after_s:g}s on {dialect} "
                      "(hung, or waiting for a lock); the step was stopped")
        else:
            reason = f"the app did not start within {outcome.timed_out_after_s:g}s on {dialect}; it was stopped"
    elif fatal:
        reason, revision = fatal[0]["message"], None
    else:
        crash = outcome.crash or "the worker stopped without a verdict"
        reason = f"{during} on {dialect}: {crash}" if step else crash
    results.append(CheckResult(missing[0], ERROR, revision, reason, fault=fault))
    results.extend(CheckResult(name, SKIPPED, None, f"not run: {missing[0]} could not finish") for name in missing[1:])
    return results


def run_database(settings: DatabaseSettings, config: RunConfig, run_id: str,
                 reporter: Reporter) -> DatabaseResult:
    """Every session of checks on one database; a database that cannot be provided is an ``error`` (or
    ``skipped`` with ``--skip-unavailable``), and never stops the other databases."""
    started = time.monotonic()
    backend = get_backend(settings.dialect)
    kind = "url" if settings.url else ("file" if settings.dialect == "sqlite" else "container")
    reporter.database_started(settings)
    checks: list[CheckResult] = []
    steps: list[dict[str, Any]] = []  # every migration step's timing, from every session (the JSON's "steps")
    retries: list[str] = []  # sessions run again after the server dropped them and came back
    servers: list[Server] = []  # to read what it could not remove once it is closed
    version = ""
    try:
        with backend.server(settings, run_id) as server:
            servers.append(server)
            version = server.server_version
            sessions = [lambda p=p: _unavailable_as_value(
                            lambda: _run_session(server, settings, p, config, reporter, run_id, steps, retries))
                        for p in plan_sessions(config.checks)]
            outcomes = _in_threads(sessions, f"{settings.dialect}-session")  # each on its own database
            for results in outcomes:
                if not isinstance(results, DatabaseUnavailable):
                    checks.extend(results)
            unavailable = [o for o in outcomes if isinstance(o, DatabaseUnavailable)]
            if unavailable:  # e.g. no scratch database could be made for one session: keep the others' checks
                raise unavailable[0]
    except DatabaseUnavailable as exc:
        status = SKIPPED if config.skip_unavailable else ERROR
        result = DatabaseResult(settings.dialect, kind, version, status, time.monotonic() - started,
                                tuple(checks), f"unavailable: {exc.reason}",  # keep what earlier sessions found
                                steps=tuple(steps), leftovers=_leftovers(servers), retries=tuple(retries))
        reporter.database_finished(result)
        return result
    checks = link_root_causes(checks, settings.dialect)
    result = DatabaseResult(settings.dialect, kind, version, database_status(checks),
                            time.monotonic() - started, tuple(checks), steps=tuple(steps),
                            leftovers=_leftovers(servers), retries=tuple(retries))
    reporter.database_finished(result)
    return result


def _leftovers(servers: list[Server]) -> tuple[str, ...]:
    return tuple(servers[0].leftovers) if servers else ()


def _unavailable_as_value(job: Callable[[], Any]) -> Any:
    try:
        return job()
    except DatabaseUnavailable as exc:
        return exc


def _run_session(server: Server, settings: DatabaseSettings, planned: tuple[str, ...], config: RunConfig,
                 reporter: Reporter, run_id: str, steps: list[dict[str, Any]], retries: list[str]) -> list[CheckResult]:
    """One worker session on a fresh scratch database; each passing check is reported as it ends, a failing one
    once its cause is known (an environment fault, see :mod:`harness.faults`; for ``data``, see
    :func:`_explain_data_failure`). A session whose server dropped it and came back runs once more, on a fresh
    scratch database (said in the report), never a step again on a database it may have partly changed."""
    dialect = settings.dialect
    for attempt in (1, 2):
        reported: set[str] = set()
        outcome = _session(server, dialect, planned, config, run_id, reporter, hold=frozenset({"data"}),
                           reported=reported)
        classified = classify(_session_results(outcome, planned, dialect), outcome, server, settings)
        if classified.retry is None or attempt == 2 or not wait_for_server(server):
            break
        retries.append(f"{', '.join(planned)}: run again on a fresh scratch database after {classified.retry}")
    steps.extend({k: v for k, v in e.items() if k != "event"} for e in outcome.of_kind("step_done"))
    results = classified.results
    suspects = outcome.of_kind("data_suspects")
    for index, result in enumerate(results):
        if result.name == "data" and result.status == FAILED and suspects:
            results[index] = _explain_data_failure(server, dialect, config, run_id, result, suspects[0])
    for late in results:
        if late.name not in reported:
            reporter.check_finished(dialect, late)
    return results


def _session(server: Server, dialect: str, planned: tuple[str, ...], config: RunConfig, run_id: str,
             reporter: Reporter | None, hold: frozenset[str] = frozenset(), reported: set[str] | None = None,
             **extra: Any) -> WorkerOutcome:
    with server.scratch_database() as url:
        def on_event(event: dict[str, Any]) -> None:
            if (reporter and event.get("event") == "check" and event["name"] not in hold
                    and event["status"] not in (FAILED, ERROR)):  # a failure waits for its cause to be known
                reporter.check_finished(dialect, CheckResult.from_dict(event))
                if reported is not None:
                    reported.add(event["name"])
            elif reporter and event.get("event") == "step":
                reporter.step_started(dialect, event)
            elif reporter and event.get("event") == "sql":
                reporter.sql_statement(dialect, event["statement"])

        return run_worker({**_spec(config, url, dialect, "chain", planned, run_id), **extra}, cwd=config.cwd,
                          step_timeout_s=config.step_timeout_s, secrets=secrets_of(url), on_event=on_event)


def _probe_passes(server: Server, dialect: str, config: RunConfig, run_id: str, revision: str,
                  nulls: list[list[str]]) -> bool:
    outcome = _session(server, dialect, ("data",), config, run_id, None, data_probe=probe_spec(revision, nulls))
    return any(e["name"] == "data" and e["status"] == PASSED for e in outcome.of_kind("check"))


def _explain_data_failure(server: Server, dialect: str, config: RunConfig, run_id: str, result: CheckResult,
                          suspects: dict[str, Any]) -> CheckResult:
    """Tell a data-shape assumption from a broken migration: the generated rows put NULL in nullable columns,
    and a data migration that assumes a value (``row.domain_name.lower()``) fails on them. Replay the chain on
    a fresh database with no generated NULL: if the step then passes, find the column (one NULL-holding column
    at a time) and say so; the verdict stays ``failed``, since the schema allows those NULLs."""
    revision, columns = suspects["revision"], suspects["columns"][:MAX_SUSPECTS]
    if not _probe_passes(server, dialect, config, run_id, revision, []):
        return result
    culprit = next((c for c in columns if len(columns) == 1
                    or not _probe_passes(server, dialect, config, run_id, revision, [c])), None)
    where = (f"{culprit[0]}.{culprit[1]} is NULL" if culprit
             else "some of " + ", ".join(f"{t}.{c}" for t, c in columns) + " are NULL")
    return replace(result, message=f"{result.message}; it fails only when {where}, which the schema allows "
                                   "(with no NULL there the step passes): the migration assumes a value the "
                                   "schema does not promise")


def run(config: RunConfig, reporter: Reporter | None = None) -> RunResult:
    """Run every check on every selected database and return the verdict.

    >>> from harness.config import build_config
    >>> result = run(build_config(app="app:create_app", db=("sqlite",)))  # doctest: +SKIP
    >>> result.ok  # doctest: +SKIP
    True
    """
    reporter = reporter or SilentReporter()
    run_id = config.run_id or new_run_id()
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    with registered_run(run_id):
        history = preflight(config, run_id)
        databases = run_databases(config, run_id, reporter)
    return RunResult(ok=(code := exit_code_for(databases)) == EXIT_OK, exit_code=code,
                     head=history.heads[0] if len(history.heads) == 1 else ",".join(history.heads),
                     heads=history.heads, databases=databases, run_id=run_id, started_at=started_at,
                     revisions=tuple({"revision": r.revision, "down_revisions": list(r.down_revisions),
                                      "message": r.message} for r in history.revisions),
                     versions=history.versions, baseline=config.baseline)


def _in_threads(jobs: list[Callable[[], Any]], name: str) -> list[Any]:
    """Run ``jobs`` at once, one thread each, and return their results in order. When the main thread is
    interrupted, every worker is stopped and each job unwinds its own cleanup before this re-raises."""
    results: dict[int, Any] = {}
    failures: list[BaseException] = []
    done = [threading.Event() for _ in jobs]

    def work(index: int, job: Callable[[], Any]) -> None:
        try:
            results[index] = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failures.append(exc)
        finally:
            done[index].set()

    for i, job in enumerate(jobs):
        threading.Thread(target=work, args=(i, job), name=f"{name}-{i}", daemon=True).start()
    # Waiting on events, not Thread.join: a join cut short by KeyboardInterrupt can leave the thread looking
    # finished (CPython), and the cleanup below must really wait for every job to unwind.
    try:
        for event in done:
            while not event.wait(0.2):
                pass
    except BaseException:
        cancel_workers()
        for event in done:
            event.wait()
        raise
    if failures:
        raise failures[0]
    return [results[i] for i in range(len(jobs))]


def run_databases(config: RunConfig, run_id: str, reporter: Reporter) -> tuple[DatabaseResult, ...]:
    """Every selected database at once: containers start together, SQLite's checks run meanwhile. Each
    database still owns its server and scratch databases; results keep the order of ``config.databases``."""
    reset_cancel()
    jobs = [lambda s=s: run_database(s, config, run_id, reporter) for s in config.databases]
    return tuple(_in_threads(jobs, "database"))


def exit_code_for(databases: tuple[DatabaseResult, ...]) -> int:
    """1 when any check failed or could not finish for a reason of its own (a defect beats an incomplete run);
    else 3 when a database could not be provided or verified (an environment fault: its server died, froze, ran
    out of disk, its worker was killed) and was not skipped, or when every database was skipped (nothing
    verified is not a pass); else 0."""
    if any(c.status == FAILED or (c.status == ERROR and not c.fault) for d in databases for c in d.checks):
        return EXIT_CHECK_FAILED
    if any(d.status == ERROR for d in databases) or all(d.status == SKIPPED for d in databases):
        return EXIT_UNAVAILABLE
    return EXIT_OK


__all__ = ["History", "Reporter", "SESSIONS", "plan_sessions", "exit_code_for", "preflight", "run", "run_database"]
