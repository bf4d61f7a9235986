"""The worker: one process per scratch database. It loads the user's app on that database and runs checks.

The parent writes a JSON spec on stdin; the worker answers with JSON lines on its original stdout (the app's own
prints are sent to stderr so they cannot corrupt the stream):

* ``{"event": "history", "heads": [...], "revisions": [...]}``
* ``{"event": "step", "direction": "up"|"down", "revision": ..., "message": ...}`` before every migration step
* ``{"event": "check", ...CheckResult}`` as each check ends
* ``{"event": "fatal", "kind": ..., "exit_code": ..., "message": ...}`` when the app or migrations are unusable
* ``{"event": "done"}`` last

Running in a separate process lets the parent stop a hung step and still drop the scratch database, and gives
every database its own app, engine and module state.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine.url import make_url
from alembic.script import ScriptDirectory

from ..chain.app_env import multidb_layout, open_app_env
from ..config.app_vars import expand_env
from ..backends import get_backend
from ..checks import CHECKS, CheckContext
from ..checks.baseline import start_from_baseline
from ..checks.data import load_user_data
from ..versions import sqlite_relative_base
from ..checks.schema import take_baseline
from ..config import IgnoreRule
from ..errors import ConfigError, HarnessError, MigrationsError
from ..chain.app_stack import installed_versions, missing_driver
from ..results import ERROR, FAILED, SKIPPED, CheckResult
from ..chain.steps import upgrade_at_once, upgrade_steps
from ..chain.history import ordered_revisions, window
from ..chain.multidb import only_engine
from ..config.redact import redact, secrets_of


def load_history(env: Any) -> tuple[list, list[str]]:
    """Ordered revisions and heads of the app's migrations, or :class:`MigrationsError` saying what is wrong."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            script_dir = ScriptDirectory.from_config(env.alembic_config)
            revisions = ordered_revisions(script_dir)
            heads = list(script_dir.get_heads())
        except Exception as exc:  # SyntaxError, RevisionError, CycleDetected, ImportError in a migration file...
            # alembic only *warns* that a down_revision names no revision, then fails with a bare KeyError
            missing = [str(w.message) for w in caught if "is not present" in str(w.message)]
            text = missing[0] if missing else " ".join(str(exc).split()) or type(exc).__name__
            kind = "missing revision" if missing else type(exc).__name__
            raise MigrationsError(f"cannot read the revisions in {env.directory}: {kind}: {text}") from exc
    if not revisions:
        raise MigrationsError(f"{env.directory}/versions holds no revisions")
    return revisions, heads


def on_scratch_database(conn: Any, scratch: Any) -> bool:
    """Whether a SQLAlchemy ``conn`` is connected to the scratch database at URL ``scratch`` (whatever engine it
    comes from)."""
    url = conn.engine.url
    return (url.get_backend_name() == scratch.get_backend_name() and url.database == scratch.database
            and url.host == scratch.host and url.port == scratch.port)


def _scratch_urls(spec: dict[str, Any]) -> list[Any]:
    """The scratch databases of this worker: the main one, and a multi-database app's binds'."""
    return [make_url(u) for u in (spec["url"], *(spec.get("bind_urls") or {}).values())]


def _limit_lock_waits(spec: dict[str, Any], statements: list[str]) -> None:
    """Run ``statements`` once on every DBAPI connection to a scratch database, committed (a rolled-back SET
    would be undone on PostgreSQL). On every engine, not just the app's: the env.py of older Flask-Migrate
    templates migrates through an engine of its own (``engine_from_config``)."""
    if not statements:
        return
    scratch = _scratch_urls(spec)

    def on_engine_connect(conn: Any, *branch: Any) -> None:  # SQLAlchemy 1.4 also passes ``branch``
        if branch and branch[0] or not any(on_scratch_database(conn, url) for url in scratch):
            return
        record = conn.connection  # the pool's proxy: its .info lives as long as the DBAPI connection
        if record.info.get("mharness_session_settings"):
            return
        cursor = record.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
        record.commit()
        record.info["mharness_session_settings"] = True

    sa.event.listen(sa.engine.Engine, "engine_connect", on_engine_connect)


#: worker modes of the rollout commands (``lint``, ``rehearse``): ``module:function(spec, env, revisions, heads,
#: emit)``, imported only when used
EXTRA_MODES: dict[str, str] = {
    "offline": "harness.lint.offline:run_mode",
    "observe": "harness.lint.observe:run_mode",
    "rehearse": "harness.rehearse.steps:run_mode",
    "estimate": "harness.lint.measure:run_mode",
    "compat-prepare": "harness.rolling.modes:run_mode",
    "compat-exercise": "harness.rolling.modes:run_mode",
    "compat-step": "harness.rolling.modes:run_mode",
}


def run(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """Do what ``spec`` asks (``mode`` ``inspect``, ``chain`` or one of :data:`EXTRA_MODES`), reporting through ``emit``."""
    problem = missing_driver([spec["url"], *spec.get("drivers", ())])
    if problem:
        raise ConfigError(problem)
    if spec.get("forbid_roots"):  # ``compat``'s previous release: never the working tree's code
        from ..chain.paths import keep_off_path

        keep_off_path(spec["forbid_roots"], spec.get("replacement_root"))
    load_dotenv()
    os.environ.update(expand_env(spec.get("env", ()), spec["url"], spec["dialect"]))  # --env: over .env, before the app
    # made (and removed, even when this process is killed) by the parent: harness.run.process.run_worker
    bind_directory = Path(spec["bind_directory"])
    bind_urls = spec.get("bind_urls") if spec["mode"] in ("chain", "serve") else None
    env = open_app_env(spec["app"], spec["url"], spec.get("migrations"), bind_directory, bind_urls,
                       inspect_only=spec["mode"] == "inspect" and bool(spec.get("multidb_ok")))
    with env.app.app_context():
        _run_in_app(spec, env, emit)


def load_dotenv() -> None:
    """``.flaskenv`` / ``.env`` as ``flask`` loads them (only variables not already set: the scratch database's
    ``DATABASE_URL`` is set before and wins)."""
    try:
        from flask.cli import load_dotenv as flask_load_dotenv
    except ImportError:  # pragma: no cover - every supported Flask has it
        return
    flask_load_dotenv()


def _run_in_app(spec: dict[str, Any], env: Any, emit: Callable[[dict[str, Any]], None]) -> None:
    """Everything the worker does once the app is up, inside its app context."""
    _limit_lock_waits(spec, get_backend(spec["dialect"]).session_settings(spec.get("lock_timeout_s", 60.0)))
    revisions, heads = load_history(env)
    _span(spec, revisions, heads)  # a bad --from / --to is the preflight's usage error
    layout = multidb_layout(env, bool(spec.get("multidb"))) if spec["mode"] == "inspect" else None
    if layout and spec.get("baseline"):
        raise ConfigError("--baseline create-all is not supported for a multi-database app (flask db init "
                          "--multidb) yet: check its chains from an empty database (drop --baseline)")
    emit({"event": "history", "heads": heads, "directory": env.directory,
          "revisions": [r.to_dict() for r in revisions], "sqlite_base": sqlite_relative_base(env.app, env.db),
          "versions": installed_versions(), "multidb": layout})
    if spec["mode"] == "inspect":
        if "data" in spec.get("checks", ()):
            load_user_data(env.directory)  # a broken harness_data.py is a usage error, found before any database
        if spec.get("then_serve") and layout is None:  # the preflight's app goes on as SQLite's (harness.run.serve)
            from .serve import serve

            serve(spec, env, revisions, heads, emit, run_session)
        return
    if spec["mode"] in EXTRA_MODES:  # rollout commands: each mode lives in its own module
        run_session(spec, env, revisions, heads, emit)
        return
    if spec["mode"] == "serve":  # one app load, every session of the database (harness.run.serve)
        from .serve import serve

        serve(spec, env, revisions, heads, emit, run_session)
        return
    run_chain(spec, env, revisions, heads, emit)


def run_session(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
                emit: Callable[[dict[str, Any]], None]) -> None:
    """One session of a serving worker: the checks (mode ``chain``), or a rollout command's mode."""
    if spec["mode"] in EXTRA_MODES:
        module, _, function = EXTRA_MODES[spec["mode"]].partition(":")
        getattr(importlib.import_module(module), function)(spec, env, revisions, heads, emit)
        return
    run_chain(spec, env, revisions, heads, emit)


def run_chain(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
              emit: Callable[[dict[str, Any]], None]) -> None:
    """One session of checks (``spec["checks"]``, in order) on the scratch database, from base; for a
    multi-database app, on the database of ``spec["bind"]`` (``None``: the main one), whose migrations alone run
    (:func:`harness.chain.multidb.only_engine`)."""
    if not env.multidb:
        _run_chain(spec, env, revisions, heads, emit)
        return
    bind = spec.get("bind")
    env.bind = bind
    try:
        with only_engine(bind):
            _run_chain(spec, env, revisions, heads, for_bind(emit, bind))
    finally:
        env.bind = None


def for_bind(emit: Callable[[dict[str, Any]], None], bind: str | None) -> Callable[[dict[str, Any]], None]:
    """``emit`` that names the database of a multi-database app in every check and step event (``"bind"``), and
    in the message of a check that failed or could not finish (``bind users: upgrade to ... failed on ...``)."""
    def emit_for_bind(event: dict[str, Any]) -> None:
        if event.get("event") in ("check", "step", "step_done"):
            event = {**event, "bind": bind}
        if event.get("event") == "check" and bind is not None and event.get("status") in (FAILED, ERROR):
            event["message"] = f"bind {bind}: {event.get('message', '')}"
        emit(event)

    return emit_for_bind


def _run_chain(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
               emit: Callable[[dict[str, Any]], None]) -> None:
    span = _span(spec, revisions, heads)
    ctx = CheckContext(env=env, dialect=spec["dialect"], backend=get_backend(spec["dialect"]),
                       revisions=span.revisions, heads=heads, emit=emit,
                       ignore=[IgnoreRule.from_dict(r) for r in spec.get("ignore", [])],
                       all_revisions=revisions, reaches_head=span.reaches_head,
                       allow_multiple_heads=bool(spec.get("allow_multiple_heads")), together=not env.multidb)
    if spec.get("data_probe"):
        ctx.state["data_probe"] = spec["data_probe"]
    if spec.get("echo_sql"):
        _echo_sql(ctx, _scratch_urls(spec))
    if spec.get("stairway_is_upgrade"):  # harness.run.serve: the stairway's first ups are the step-wise upgrade
        ctx.state["stairway_is_upgrade"] = True
    if spec.get("eager_snapshots"):  # harness.run.runner: the stairway's catalogue differed, reflect every state
        ctx.state["eager_snapshots"] = True
    checks: list[str] = spec["checks"]
    needs_database = [c for c in checks if c != "single_head"]
    since = spec.get("since")  # --since: what existed at the ref, in one go (one alembic upgrade per head)
    if spec.get("apply_only"):  # harness.run.sessions: the template every later session's database is copied from
        failure = ctx.run_steps(upgrade_at_once(span.before) if since else upgrade_steps(span.before))
        emit({"event": "applied", "ok": failure is None})
        return
    if spec.get("baseline") and needs_database:  # --baseline: the window is checked from the baseline at head
        checks = start_from_baseline(ctx, checks, spec["baseline"], emit)
    elif spec.get("prepared"):  # the scratch database is a copy of one where span.before was applied (the same)
        pass
    elif span.before and needs_database:  # --from: apply what comes before the window first, unchecked
        failure = ctx.run_steps(upgrade_at_once(span.before) if since else upgrade_steps(span.before))
        if failure:  # still a real failure of the chain
            where = f"applying the revisions that exist at {since}" if since else "before --from"
            emit({"event": "check", **CheckResult(needs_database[0], FAILED, failure.step.revision.revision,
                  f"{where}: {failure.describe(ctx.dialect)}").to_dict()})
            return
    if "leaves_no_trace" in checks:
        try:
            take_baseline(ctx)
        except Exception as exc:  # noqa: BLE001 - leaves_no_trace reports it as its own error
            ctx.state["baseline_error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    for name in checks:
        if name == "upgrade" and ctx.state.get("stairway_is_upgrade") and not ctx.state.get("upgraded_by_stairway"):
            return  # the stairway did not get to the top: the parent runs the chain's checks on a fresh database
        started = time.monotonic()
        whole = next((r for r in ctx.rules_for(name) if r.whole_check), None)
        if whole and name not in ("upgrade", "downgrade"):  # the chain must still move for the checks after
            result = CheckResult(name, SKIPPED, None, f"ignored: {whole.reason}")
        else:
            ctx.current_check = name
            result = run_check(name, ctx)
            if whole:
                result = CheckResult(name, SKIPPED, result.revision, f"ignored: {whole.reason} ({result.status}: "
                                     f"{result.message})", (), result.differences + result.ignored)
        emit({"event": "check", **replace(result, duration_s=time.monotonic() - started).to_dict()})


def _span(spec: dict[str, Any], revisions: list, heads: list[str]) -> Any:
    """The part of the chain under test: ``--from`` / ``--to``, or (``--since``) every revision but those only
    applied (``spec["applied"]``)."""
    span = window(revisions, heads, spec.get("from"), spec.get("to"))
    applied = set(spec.get("applied") or ())
    if not applied:
        return span
    before = [r for r in revisions if r.revision in applied]
    return replace(span, before=before, revisions=[r for r in span.revisions if r.revision not in applied])


#: the session whose statements ``-v`` echoes (a worker that serves several sessions listens once)
_ECHOING: dict[str, Any] = {}


def _echo_sql(ctx: CheckContext, scratch: list[Any]) -> None:
    """``-v``: every statement a migration step sends (not the harness's own reflection and row queries), from
    whichever engine env.py migrates with."""
    listening = bool(_ECHOING)
    _ECHOING["ctx"] = ctx
    if listening:
        return

    def before_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        ctx = _ECHOING["ctx"]
        if ctx.state.get("in_step") and any(on_scratch_database(conn, url) for url in scratch):
            text = " ".join(str(statement).split())
            ctx.emit({"event": "sql", "statement": text if len(text) <= 500 else text[:497] + "..."})

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before_execute)


#: checks that move the chain: when one raises, where the database is afterwards is unknown
_MOVES_THE_CHAIN = {"upgrade", "downgrade", "stairway", "data"}


def run_check(name: str, ctx: CheckContext) -> CheckResult:
    """Run one check; a check that raises (a harness bug, a database answer nobody expected) is an ``error``
    verdict for that check alone, with the traceback kept, and the session goes on with the next check."""
    try:
        return CHECKS[name](ctx)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - turned into a verdict, never the end of the session
        if name in _MOVES_THE_CHAIN:
            ctx.at_head = ctx.at_base = False  # the checks that need a known place in the chain are skipped
        text = " ".join(str(exc).split()) or type(exc).__name__
        return CheckResult(name, ERROR, None, f"the check itself raised {type(exc).__name__}: {text} "
                           "(--verbose shows the traceback; please report it if it is the harness's fault)",
                           traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _redacted(value: Any, hide: list[str]) -> Any:
    """``value`` with every string in it redacted (before JSON encoding, which would escape a password)."""
    if isinstance(value, str):
        return redact(value, hide)
    if isinstance(value, dict):
        return {k: _redacted(v, hide) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v, hide) for v in value]
    return value


def _die_with_parent() -> None:
    """On Linux, get SIGKILL when the harness dies (even by ``kill -9``), so no orphan keeps migrating."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's cleanup still stops the worker
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def main() -> int:
    _die_with_parent()
    spec = json.loads(sys.stdin.readline())  # serve mode reads its sessions from the lines after it
    hide = secrets_of(spec.get("url"))
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything the app or alembic prints goes to stderr, not into the event stream
    sys.stdout = sys.stderr

    def emit(event: dict[str, Any]) -> None:
        stream.write(json.dumps(_redacted(event, hide)) + "\n")
        stream.flush()

    try:
        run(spec, emit)
    except HarnessError as exc:
        emit({"event": "fatal", "kind": type(exc).__name__, "exit_code": exc.exit_code, "message": str(exc)})
    emit({"event": "done"})
    _exit_now(stream)
    return 0  # pragma: no cover - _exit_now does not return


def _exit_now(stream: Any) -> None:
    """End the worker as soon as it said ``done``: the exit handlers run (the app's, logging's), the streams are
    flushed, and then the process ends without tearing its interpreter down. With an app, SQLAlchemy and alembic
    loaded that teardown takes 0.3-1 s, paid at the end of every database's run and before the preflight's answer
    counts (the parent waits for the worker to exit)."""
    import atexit

    atexit._run_exitfuncs()
    for out in (stream, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            out.flush()
        except (OSError, ValueError, AttributeError):  # closed already: nothing left to flush
            pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
