"""Orchestrate a run: check the inputs once, then for each database provide a server, give every worker session
its own scratch database, and turn what the workers say into results."""
from __future__ import annotations

import contextlib
import datetime
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Protocol

from ..backends import Server, get_backend
from ..backends.names import new_run_id
from ..config import DatabaseSettings, RunConfig
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNAVAILABLE, ConfigError, DatabaseUnavailable
from .faults import (SERVER_FROZEN, SERVER_GONE, WORKER_KILLED, between_sessions, classify, last_step,
                     sweep_when_back, wait_for_server, worker_killed)
from .process import WorkerOutcome, cancel_workers, reset_cancel
from ..chain.multidb import bind_plans, binds_here, for_bind_results
from ..chain.since import touches
# lint, rehearse and compat import these from here
from .preflight import History, Preflight, _spec, preflight, started_preflight  # noqa: F401
from .sessions import DatabaseSessions
from ..config.redact import secrets_of
from ..checks.data import MAX_SUSPECTS, probe_spec
from ..results import (ERROR, FAILED, PASSED, SKIPPED, CheckResult, DatabaseResult, RunResult, database_status,
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


#: every check in the order the report lists them
ORDER: tuple[str, ...] = tuple(name for _, checks in SESSIONS for name in checks)


def merge_passes(plans: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """One pass where the checks allow it: the stairway (up, down, up each revision) ends at the top, so when it
    passes it was the step-wise upgrade too, and the chain's checks after the upgrade go on from there in the same
    session (the runner gives them a session of their own when it does not pass)."""
    chain = next((p for p in plans if "upgrade" in p), None)
    if chain is None or ("stairway",) not in plans:
        return plans
    head = chain[:1] if chain[0] == "single_head" else ()  # needs no database: first, whatever follows
    merged = (*head, "stairway", *chain[len(head):])
    return [merged if p == chain else p for p in plans if p != ("stairway",)]


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


def _session_results(outcome: WorkerOutcome, planned: tuple[str, ...], dialect: str) -> list[CheckResult]:
    """Checks the worker reported, then a verdict for each planned check it never reached."""
    results = [CheckResult.from_dict(e) for e in outcome.of_kind("check")]
    missing = [name for name in planned if name not in {r.name for r in results}]
    if not missing:
        return results
    fatal = outcome.of_kind("fatal")
    steps = outcome.of_kind("step")
    step = steps[-1] if steps else None  # the step the worker was in when it stopped answering
    during = last_step(outcome)
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
                 reporter: Reporter, gate: Preflight | None = None) -> DatabaseResult:
    """Every session of checks on one database; a database that cannot be provided is an ``error`` (or
    ``skipped`` with ``--skip-unavailable``), and never stops the other databases."""
    started = time.monotonic()
    backend = get_backend(settings.dialect)
    kind = "url" if settings.url else ("file" if settings.dialect == "sqlite" else "container")
    announced: list[bool] = []

    def nothing_to_check() -> bool:  # --since found no revision added or changed: this database is not used
        return gate is not None and gate.nothing_to_check

    def announce() -> dict[str, Any]:
        """Once the preflight passed (a bad --app stays one line): say the database started; the specs' extra."""
        extra = gate.wait() if gate is not None else {}
        if not announced and not nothing_to_check():
            announced.append(True)
            reporter.database_started(settings)
        return extra

    if gate is None:
        announce()
    checks: list[CheckResult] = []
    steps: list[dict[str, Any]] = []  # every migration step's timing, from every session (the JSON's "steps")
    retries: list[str] = []  # sessions run again after the server dropped them and came back
    servers: list[Server] = []  # to read what it could not remove once it is closed
    version = ""
    try:
        if gate is not None:
            gate.wait_unless_failed()  # a bad --app found by the preflight starts no container
        with backend.server(settings, run_id) as server:
            servers.append(server)
            version = server.server_version
            spec = _spec(config, "", settings.dialect, "chain", (), run_id)
            with DatabaseSessions(server, spec, config.cwd, config.step_timeout_s, secrets_of) as sessions:
                if gate is not None:  # the app loads while the preflight runs (SQLite: the preflight's own)
                    sessions.prestart(gate.take(settings))
                sessions.extra = announce()
                if nothing_to_check():  # started with the preflight for nothing: stopped, said nowhere
                    return DatabaseResult(settings.dialect, kind, version, SKIPPED, time.monotonic() - started, ())
                unavailable: list[DatabaseUnavailable] = []
                plans = plan_sessions(config.checks)  # --baseline: its window's upgrade is not the stairway's
                binds = gate.history.binds if gate is not None and gate.history is not None else None
                here, elsewhere = binds_here(binds, settings.dialect, [d.dialect for d in config.databases],
                                             tuple(n for plan in bind_plans(plans, "") for n in plan))
                if binds is not None:
                    sessions.use_binds(here)
                # a multi-database app: each database's chain in sessions of its own
                passes = [(bind, plan) for bind in (None, *here)
                          for plan in bind_plans(plans if config.baseline else merge_passes(plans), bind)]
                for number, (bind, plan) in enumerate(passes):
                    sessions.expect_more = number < len(passes) - 1  # its fresh database is made meanwhile
                    gone = _server_gone(checks, server)
                    if gone:  # a dead or frozen server: the sessions after it cannot run either
                        checks.extend(_not_run(plan, gone, settings.dialect, reporter, bind))
                        continue
                    try:
                        _run_pass(sessions, settings, plan, config, reporter, steps, retries, checks, bind)
                    except DatabaseUnavailable as exc:  # e.g. no scratch database for one session: keep the others'
                        unavailable.append(exc)
                for result in elsewhere:
                    reporter.check_finished(settings.dialect, result)
                checks.extend(elsewhere)
            sweep_when_back(server)  # its scratch databases are dropped by now, or kept by a server that is down
            order = {bind: i for i, bind in enumerate((None, *(binds or {})))}
            checks.sort(key=lambda c: (order.get(c.bind, len(order)),
                                       ORDER.index(c.name) if c.name in ORDER else len(ORDER)))
            if unavailable:
                raise unavailable[0]
    except DatabaseUnavailable as exc:
        announce()
        if nothing_to_check():
            return DatabaseResult(settings.dialect, kind, version, SKIPPED, time.monotonic() - started, ())
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


def _server_gone(checks: list[CheckResult], server: Server) -> str:
    """Why the server cannot serve another session (an earlier one found it dead or frozen), else ``""``."""
    struck = next((c for c in checks if c.fault in (SERVER_GONE, SERVER_FROZEN)), None)
    if struck is None:
        return ""
    gone = server.probe()
    return f"the server cannot be used any more ({gone}; see {struck.name})" if gone else ""


def _not_run(names: tuple[str, ...], why: str, dialect: str, reporter: Reporter,
             bind: str | None = None) -> list[CheckResult]:
    results = [CheckResult(name, SKIPPED, None, f"not run: {why}", bind=bind) for name in names]
    for result in results:
        reporter.check_finished(dialect, result)
    return results


def _run_pass(sessions: DatabaseSessions, settings: DatabaseSettings, planned: tuple[str, ...], config: RunConfig,
              reporter: Reporter, steps: list[dict[str, Any]], retries: list[str], out: list[CheckResult],
              bind: str | None = None) -> None:
    """A planned session, its verdicts added to ``out`` as soon as they are known; a merged pass
    (:func:`merge_passes`) whose stairway did not pass keeps only the verdicts before the upgrade, and the chain's
    checks get a session of their own on a fresh database, as before."""
    if "stairway" not in planned or "upgrade" not in planned:
        out.extend(_run_session(sessions, settings, planned, config, reporter, steps, retries, bind=bind))
        return
    results = _run_session(sessions, settings, planned, config, reporter, steps, retries, merged=True, bind=bind)
    if any(r.name == "stairway" and r.status == PASSED for r in results):
        out.extend(results)
        return
    done = planned[:planned.index("stairway") + 1]
    out.extend(r for r in results if r.name in done)
    gone = _server_gone(out, sessions.server)
    rest = tuple(name for name in planned if name not in done)
    if gone:
        out.extend(_not_run(rest, gone, settings.dialect, reporter, bind))
        return
    out.extend(_run_session(sessions, settings, rest, config, reporter, steps, retries, bind=bind))


def _run_session(sessions: DatabaseSessions, settings: DatabaseSettings, planned: tuple[str, ...],
                 config: RunConfig, reporter: Reporter, steps: list[dict[str, Any]], retries: list[str],
                 merged: bool = False, bind: str | None = None) -> list[CheckResult]:
    """One session on a fresh scratch database; each passing check is reported as it ends, a failing one
    once its cause is known (an environment fault, see :mod:`harness.run.faults`; for ``data``, see
    :func:`_explain_data_failure`). A session whose server dropped it and came back runs once more, on a fresh
    scratch database (said in the report), never a step again on a database it may have partly changed."""
    dialect = settings.dialect
    server = sessions.server
    for attempt in (1, 2):
        reported: set[str] = set()
        try:
            outcome = _decided_session(sessions, dialect, planned, reporter, hold=frozenset({"data"}),
                                       reported=reported, stairway_is_upgrade=merged,
                                       **({"bind": bind} if bind is not None else {}))
        except DatabaseUnavailable as exc:  # no fresh scratch database: the server may have gone between sessions
            began = planned[:planned.index("stairway") + 1] if merged else planned  # _run_pass says the rest
            lost = between_sessions(exc.reason, began, server, settings)
            if lost is None:
                raise
            if lost.retry is None or attempt == 2 or not wait_for_server(server):
                results = for_bind_results(lost.results, bind)
                for result in results:
                    reporter.check_finished(dialect, result)
                return results
            retries.append(f"{', '.join(f'{n}[{bind}]' if bind else n for n in planned)}: run again on a fresh "
                           f"scratch database after {lost.retry}")
            continue
        expected = planned
        stairway = [e for e in outcome.of_kind("check") if e["name"] == "stairway"]
        if merged and not (stairway and stairway[0]["status"] == PASSED):  # the chain's checks run apart
            expected = planned[:planned.index("stairway") + 1]
            outcome.events[:] = [e for e in outcome.events if not (e.get("event") == "check" and e["name"] not in
                                                                   expected or e.get("shared_with"))]
        classified = classify(for_bind_results(_session_results(outcome, expected, dialect), bind), outcome, server,
                              settings)
        if classified.retry is None or attempt == 2 or not wait_for_server(server):
            break
        retries.append(f"{', '.join(f'{n}[{bind}]' if bind else n for n in planned)}: run again on a fresh scratch database after {classified.retry}")
    steps.extend({k: v for k, v in e.items() if k != "event"} for e in outcome.of_kind("step_done"))
    results = classified.results
    suspects = outcome.of_kind("data_suspects")
    for index, result in enumerate(results):
        if result.name == "data" and result.status == FAILED and suspects:
            results[index] = _explain_data_failure(sessions, result, suspects[0], bind)
    for late in results:
        if late.name not in reported:
            reporter.check_finished(dialect, late)
    return results


def _session(sessions: DatabaseSessions, dialect: str, planned: tuple[str, ...], reporter: Reporter | None,
             hold: frozenset[str] = frozenset(), reported: set[str] | None = None, **extra: Any) -> WorkerOutcome:
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

    return sessions.run({"checks": list(planned), **extra}, on_event)


def _decided_session(sessions: DatabaseSessions, dialect: str, planned: tuple[str, ...], reporter: Reporter | None,
                     hold: frozenset[str], reported: set[str], **extra: Any) -> WorkerOutcome:
    """A session; if its stairway compared the catalogue and found it different (``undecided``: a real difference
    or one of text alone, which only the schema reflected at every step can tell apart), the same session again
    on a fresh database, reflecting every state as the stairway always did, whose outcome is the session's. What
    the first one reported as it went is not reported again."""
    outcome = _session(sessions, dialect, planned, reporter, hold=hold, reported=reported, **extra)
    if not (outcome.finished and outcome.of_kind("undecided")):
        return outcome
    return _session(sessions, dialect, planned, reporter, hold=hold | frozenset(reported), reported=reported,
                    eager_snapshots=True, **extra)


def _probe_passes(sessions: DatabaseSessions, revision: str, nulls: list[list[str]], bind: str | None) -> bool:
    outcome = _session(sessions, "", ("data",), None, data_probe=probe_spec(revision, nulls),
                       **({"bind": bind} if bind is not None else {}))
    return any(e["name"] == "data" and e["status"] == PASSED for e in outcome.of_kind("check"))


def _explain_data_failure(sessions: DatabaseSessions, result: CheckResult, suspects: dict[str, Any],
                          bind: str | None = None) -> CheckResult:
    """Tell a data-shape assumption from a broken migration: the generated rows put NULL in nullable columns,
    and a data migration that assumes a value (``row.domain_name.lower()``) fails on them. Replay the chain on
    a fresh database with no generated NULL: if the step then passes, find the column (one NULL-holding column
    at a time) and say so; the verdict stays ``failed``, since the schema allows those NULLs."""
    revision, columns = suspects["revision"], suspects["columns"][:MAX_SUSPECTS]
    if not _probe_passes(sessions, revision, [], bind):
        return result
    culprit = next((c for c in columns if len(columns) == 1
                    or not _probe_passes(sessions, revision, [c], bind)), None)
    where = (f"{culprit[0]}.{culprit[1]} is NULL" if culprit
             else "some of " + ", ".join(f"{t}.{c}" for t, c in columns) + " are NULL")
    return replace(result, message=f"{result.message}; it fails only when {where}, which the schema allows "
                                   "(with no NULL there the step passes): the migration assumes a value the "
                                   "schema does not promise")


def run(config: RunConfig, reporter: Reporter | None = None, gate: Preflight | None = None) -> RunResult:
    """Run every check on every selected database and return the verdict. ``gate``: the run's preflight, already
    started by the caller (:func:`harness.run.preflight.started_preflight`, with ``config.run_id``).

    >>> from harness.config import build_config
    >>> result = run(build_config(app="app:create_app", db=("sqlite",)))  # doctest: +SKIP
    >>> result.ok  # doctest: +SKIP
    True
    """
    reporter = reporter or SilentReporter()
    run_id = config.run_id or new_run_id()
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    with contextlib.nullcontext(gate) if gate is not None else started_preflight(config, run_id) as gate:
        try:
            # --since: the databases start with the preflight only if a file of the migrations directory changed
            # since the ref; else the preflight says first whether there is anything to check (no server started)
            if config.since and not _touches(gate, config):
                gate.wait()
            databases = () if gate.nothing_to_check else run_databases(config, run_id, reporter, gate)
            nothing = gate.nothing_to_check  # known now, also if the databases started with the preflight
            databases = () if nothing else databases
        except BaseException:
            gate.wait()  # the preflight's own error (a bad --app) comes first
            raise
        history = gate.history
        assert history is not None
    code = EXIT_OK if nothing else exit_code_for(databases)
    return RunResult(ok=code == EXIT_OK, exit_code=code, since=gate.since,
                     head=history.heads[0] if len(history.heads) == 1 else ",".join(history.heads),
                     heads=history.heads, databases=databases, run_id=run_id, started_at=started_at,
                     revisions=tuple({"revision": r.revision, "down_revisions": list(r.down_revisions),
                                      "message": r.message} for r in history.revisions),
                     versions=history.versions, baseline=config.baseline)


def _touches(gate: Preflight, config: RunConfig) -> bool:
    """``--since``: whether a file of the migrations directory changed since the ref (``False`` when git cannot
    tell: the preflight then says why)."""
    try:
        changed = gate.changed_since()
    except ConfigError:
        return False
    return touches(changed, config.cwd, config.migrations or "migrations")


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


def run_databases(config: RunConfig, run_id: str, reporter: Reporter,
                  gate: Preflight | None = None) -> tuple[DatabaseResult, ...]:
    """Every selected database at once: containers start together (and with the preflight, ``gate``), SQLite's
    checks run meanwhile. Each database still owns its server and scratch databases; results keep the order of
    ``config.databases``."""
    if gate is None:
        reset_cancel()
    jobs = [lambda s=s: run_database(s, config, run_id, reporter, gate) for s in config.databases]
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
