"""The offline SQL of each pending revision (``upgrade --sql``), per dialect, one revision at a time.

The worker side (:func:`run_mode`) runs inside the user's app, loaded on a URL of the wanted dialect that is never
connected to (or, in ``lint``'s worker, on its scratch database, every connection refused while it renders):
alembic's offline mode only compiles. The parent side (:func:`offline_sql`) starts that worker and
returns its events; :func:`write_sql_files` is ``--sql-dir``.

Each revision is rendered from its own parents (``<parents>:<rev>``, from base for a root), so a merge renders
only the merge and a branch only its own revision. Rendering does not depend on a database state: a revision that
cannot be rendered offline (it reads the live database through ``op.get_bind()``) is an ``error`` for that
revision, and the revisions after it still render.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ..backends.base import SCRATCH_PREFIX
from ..errors import ConfigError
from ..chain.history import Revision, window
from ..run.process import WorkerOutcome, run_worker
from ..chain.steps import describe_error
from .findings import INFO, WARNING, Finding
from .source_rules import upgrade_line

OFFLINE = "offline"
#: URLs for the dialects whose offline SQL is wanted: never connected to (port 9 is "discard": a connection
#: attempt, should an app make one at start-up, is refused at once instead of hanging)
OFFLINE_URLS: dict[str, str] = {
    "postgresql": "postgresql+psycopg2://offline@127.0.0.1:9/mharness_offline",
    "mysql": "mysql+pymysql://offline@127.0.0.1:9/mharness_offline",
}


def render_revision(env: Any, script: Any, rev: Revision) -> str:
    """The ``upgrade --sql`` text of ``rev`` alone (from its parents), as the app's env.py renders it.

    Raises whatever the migration raises when it cannot run offline.
    """
    from alembic.runtime.environment import EnvironmentContext

    config = env.alembic_config
    buffer = io.StringIO()
    previous = getattr(config, "output_buffer", None)
    config.output_buffer = buffer  # EnvironmentContext.configure() takes it when env.py passes none

    def upgrade(heads: Any, context: Any) -> Any:
        return script._upgrade_revs(rev.revision, heads)

    starting = tuple(rev.down_revisions) or None
    try:
        with EnvironmentContext(config, script, fn=upgrade, as_sql=True, starting_rev=starting,
                                destination_rev=rev.revision, tag=None):
            script.run_env()
    finally:
        config.output_buffer = previous
    return buffer.getvalue()


#: what a migration raises when it reads the database through op.get_bind() in --sql mode
_NO_CONNECTION = {"TypeError", "AttributeError", "NoInspectionAvailable", "InvalidRequestError"}


def offline_error(rev: Revision, dialect: str, described: str) -> str:
    """One line: which revision cannot be rendered offline on ``dialect``, the exception and its place, and why."""
    if "batch mode with dialect sqlite requires a live database" in described:
        why = ("SQLite batch mode reflects the live table to copy it; offline SQL cannot show this step "
               "(batch_alter_table(..., copy_from=Table(...)) would let it)")
        described = described.split(";")[0] + described[described.rfind(" (at "):] if " (at " in described \
            else described.split(";")[0]
    elif described.split(":")[0] in _NO_CONNECTION:
        why = ("in --sql mode op.get_bind() is no live connection: a migration that reads the database "
               "(sa.inspect(op.get_bind()), rows through conn.execute) cannot be rendered offline")
    else:
        return f"{rev.revision} cannot be rendered offline on {dialect}: {described}"
    return f"{rev.revision} cannot be rendered offline on {dialect}: {described} [{why}]"


def run_mode(spec: dict[str, Any], env: Any, revisions: list[Revision], heads: list[str],
             emit: Callable[[dict[str, Any]], None]) -> None:
    """Worker mode ``offline``: one ``{"event": "offline", "revision", "file", "sql", "error"}`` per revision of
    the window ``spec["from"]`` … ``spec["to"]``, in chain order."""
    import sqlalchemy as sa
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(env.alembic_config)
    span = window(revisions, heads, spec.get("from"), spec.get("to"))
    versions_dirs = tuple(sorted({os.path.dirname(os.path.abspath(r.path)) for r in revisions}))
    # ``lint`` renders in the worker that observes next, whose app points at a live scratch database: a connection
    # the migration opens by itself is refused here, as on :data:`OFFLINE_URLS`, so the SQL never depends on it
    refuse = spec.get("refuse_connections") and spec["dialect"] in OFFLINE_URLS
    if refuse:
        sa.event.listen(sa.engine.Engine, "do_connect", _refused)
    try:
        for rev in span.revisions:
            sql: str | None = None
            error: str | None = None
            try:
                sql = render_revision(env, script, rev)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too: some env.py files call sys.exit on errors
                error = offline_error(rev, spec["dialect"], describe_error(exc, versions_dirs))
            emit({"event": OFFLINE, "revision": rev.revision, "file": rev.path, "message": rev.message,
                  "parents": list(rev.down_revisions), "sql": sql, "error": error})
    finally:
        if refuse:
            sa.event.remove(sa.engine.Engine, "do_connect", _refused)


def _refused(*args: Any) -> None:
    raise ConnectionRefusedError("connection refused: offline SQL is rendered without a database")


def offline_sql(app: str, migrations: str | None, dialect: str, from_rev: str | None, to_rev: str | None,
                cwd: str, run_id: str, step_timeout_s: float, python: str | None = None) -> list[dict[str, Any]]:
    """The offline events (see :func:`run_mode`) of the revisions from ``from_rev`` (exclusive) to ``to_rev``
    on ``dialect``, rendered by a worker (in the app's interpreter ``python``) that loads ``app`` on a URL it
    never connects to.

    Raises :class:`ConfigError` when the app or the migrations cannot be loaded (the worker's ``fatal``), or the
    worker died or hung.

    >>> events = offline_sql("app:create_app", None, "postgresql", None, None, ".", "abcd1234", 60)  # doctest: +SKIP
    >>> events[0]["sql"].startswith("BEGIN;")  # doctest: +SKIP
    True
    """
    directory = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_offline_"))
    try:
        url = OFFLINE_URLS.get(dialect) or f"sqlite:///{directory / 'offline.db'}"
        spec = {"run_id": run_id, "app": app, "migrations": migrations, "url": url, "dialect": dialect,
                "mode": OFFLINE, "checks": [], "ignore": [], "from": from_rev, "to": to_rev,
                "allow_multiple_heads": True, "lock_timeout_s": 60.0, "echo_sql": False, "python": python}
        outcome = run_worker(spec, cwd=cwd, step_timeout_s=step_timeout_s, secrets=[])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return offline_events(outcome, app, dialect, step_timeout_s)


def offline_events(outcome: WorkerOutcome, app: str, dialect: str, step_timeout_s: float) -> list[dict[str, Any]]:
    """The offline events of a worker's ``offline`` run (its own, or a session of ``lint``'s worker).

    Raises :class:`ConfigError` when the app or the migrations cannot be loaded, or the worker died or hung.
    """
    outcome.raise_fatal()
    if not outcome.finished:
        done = outcome.of_kind(OFFLINE)
        where = f" after {done[-1]['revision']}" if done else ""
        reason = outcome.crash or f"rendering took longer than {step_timeout_s:g}s{where}"
        raise ConfigError(f"cannot render the offline SQL of {app} on {dialect}: {reason}")
    return outcome.of_kind(OFFLINE)


def _comment(text: str) -> str:
    return "\n".join(f"-- {line}".rstrip() for line in text.splitlines() or [""])


def write_sql_files(directory: str | os.PathLike[str], dialect: str,
                    events: Sequence[dict[str, Any]]) -> list[Path]:
    """``--sql-dir``: ``<directory>/<dialect>/<NNNN>_<revision>.sql`` per offline event (NNNN its place in the
    window, from 0001), headed by comments naming the revision, its message, parents and file.

    A revision that could not be rendered still gets its file, holding only comments (the header and
    ``-- ERROR: ...``): the numbering stays the chain's, and running the file does nothing. Files of an earlier
    run in ``<directory>/<dialect>`` are replaced.
    """
    target = Path(directory) / dialect
    if target.exists():
        for old in target.glob("[0-9][0-9][0-9][0-9]_*.sql"):
            old.unlink()
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for position, event in enumerate(events, start=1):
        revision = event["revision"]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", revision)
        header = [f"revision {revision}" + (f": {event['message']}" if event.get("message") else ""),
                  f"parents: {', '.join(event.get('parents') or []) or 'base'}",
                  f"file: {event.get('file') or '?'}", f"dialect: {dialect}"]
        body = event.get("sql")
        if event.get("error") or body is None:
            body = _comment(f"ERROR: {event.get('error') or 'no SQL'}") + "\n"
        path = target / f"{position:04d}_{safe}.sql"
        path.write_text(_comment("\n".join(header)) + "\n\n" + body, encoding="utf-8")
        written.append(path)
    return written


def offline_findings(dialect: str, events: Sequence[dict[str, Any]]) -> list[Finding]:
    """An ``offline-sql-failed`` :class:`~harness.lint.findings.Finding` per event that has an ``error`` (severity
    ``info`` for SQLite batch mode, which cannot render offline by design; ``warning`` otherwise), at the line of
    the migration the error names, else at ``def upgrade``."""
    out = []
    for event in events:
        error = event.get("error")
        if not error:
            continue
        at = re.search(r"\(at [^():]+:(\d+)\)", error)
        line = int(at.group(1)) if at else upgrade_line(event.get("file"))
        severity = INFO if "SQLite batch mode" in error else WARNING
        out.append(Finding(rule="offline-sql-failed", severity=severity, database=dialect,
                           revision=event["revision"], message=error, source="offline", file=event.get("file"),
                           line=line))
    return out
