"""Worker mode ``observe``: run each pending step on a scratch database whose tables hold rows, and record what
the database really did (see :mod:`harness.lint.observers`).

Rules on a migration's text guess what a statement will lock; the database knows. Each step runs alone (one
alembic command, so one transaction where the dialect has transactional DDL), after every table got a few rows,
with the dialect's observer attached to the app's own engine.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable

import sqlalchemy as sa

from ..checks import CheckContext
from ..backends import get_backend
from ..datagen import DEFAULT_EXCLUDE, count_rows, fill_database
from ..chain.history import window
from ..schema.reflect import Snapshot
from ..chain.steps import upgrade_steps
from ..run.worker import on_scratch_database
from .findings import ERROR, Finding
from .observers import StepObserver, StepWatch, observer_for

DEFAULT_ROWS = 20
#: the ``check`` of the step events of revisions before ``--from``: applied, not observed
BEFORE_WINDOW = "lint-before-from"
_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_INTEGERS = ("TINYINT", "SMALLINT", "MEDIUMINT", "INTEGER", "INT", "BIGINT")
_TYPE = re.compile(r"^\s*([A-Z][A-Z ]*?)\s*(?:\(([\d,\s]+)\))?\s*$")


def run_mode(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
             emit: Callable[[dict[str, Any]], None]) -> None:
    span = window(revisions, heads, spec.get("from"), spec.get("to"))
    dialect = spec["dialect"]
    ctx = CheckContext(env=env, dialect=dialect, backend=get_backend(dialect), revisions=span.revisions,
                       heads=heads, emit=emit, all_revisions=revisions, reaches_head=span.reaches_head)
    ctx.current_check = BEFORE_WINDOW
    if span.before:
        failure = ctx.run_steps(upgrade_steps(span.before))
        if failure:
            emit({"event": "finding", **Finding(
                "step-fails", ERROR, dialect, failure.step.revision.revision,
                f"before --from: {failure.describe(dialect)}", "observed", file=failure.step.revision.path).to_dict()})
            return
    ctx.current_check = "lint"
    engine = env.engine()
    observer = observer_for(dialect, engine)
    current: list[StepWatch] = []
    _listen(engine, observer, current)
    rows = int(spec.get("rows", DEFAULT_ROWS))
    fill = _bulk_filled if spec.get("bulk_fill") else _filled  # bulk: the ``estimate`` mode's big tables
    try:
        for step in upgrade_steps(span.revisions):
            revision = step.revision
            with engine.connect() as conn:
                fill_started = time.monotonic()
                tables_before = fill(conn, rows)
                fill_s = time.monotonic() - fill_started
                before = ctx.snapshot()
                watch = StepWatch(revision.revision, tables_before)
                observer.begin_step(watch, conn)
            current.append(watch)
            started = time.monotonic()
            try:
                failure = ctx.run_steps([step])
            finally:
                current.clear()
            duration = time.monotonic() - started
            findings: list[Finding] = []
            if failure is None:
                with engine.connect() as conn:
                    findings = observer.end_step(watch, conn, revision.path)
                if dialect != "sqlite":  # SQLite stores any length in any column: nothing narrows there
                    findings += narrowed_columns(watch, before, ctx.snapshot(), dialect, revision.path)
            else:
                findings.append(Finding("step-fails", ERROR, dialect, revision.revision,
                                        f"{failure.describe(dialect)} (the tables held {rows} rows each)",
                                        "observed", file=revision.path))
            emit({"event": "observation", "revision": revision.revision, "duration_s": round(duration, 4),
                  "statements": len(watch.statements), "rows_touched": watch.rows_touched,
                  "passed": failure is None, "tables": watch.tables,
                  **({"fill_s": round(fill_s, 4), "tables_before": tables_before,
                      "statements_s": round(watch.private.get("statements_s", duration), 5)}
                     if spec.get("bulk_fill") else {}),
                  **({"observer_errors": watch.private["errors"]} if watch.private.get("errors") else {})})
            for finding in findings:
                emit({"event": "finding", **finding.to_dict()})
            if failure is not None:
                return
    finally:
        close = getattr(observer, "close", None)
        if close:
            close()


def _filled(conn: sa.engine.Connection, rows: int) -> dict[str, int]:
    """Give every table with fewer than ``rows`` rows some more; the row counts afterwards."""
    counts = count_rows(conn)
    full = [name for name, count in counts.items() if count >= rows]
    if len(full) < len(counts):
        fill_database(conn, rows, seed=len(counts), exclude=(*DEFAULT_EXCLUDE, *full))
        counts = count_rows(conn)
    return counts


def _bulk_filled(conn: sa.engine.Connection, rows: int) -> dict[str, int]:
    from ..estimate.fill import bulk_fill

    return bulk_fill(conn, rows).rows


def _listen(engine: Any, observer: StepObserver, current: list[StepWatch]) -> None:
    """The observer sees every statement (and each commit) of the step, on the step's own connection.

    Listened to on every engine of the process, not only the app's: an env.py of the older Flask-Migrate
    templates (and many apps' own) migrates through an engine of its own (``engine_from_config(...)``) on the
    same database. Only connections to the scratch database count, and never the observer's own probes."""
    scratch = engine.url

    def ours(conn: Any) -> bool:
        return bool(current) and not observer.owns(conn.engine) and on_scratch_database(conn, scratch)

    def before_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if ours(conn) and "alembic_version" not in statement:
            current[0].statements.append(statement)
            try:
                observer.before_statement(current[0], statement, conn.connection)
            except Exception as exc:  # noqa: BLE001 - an observer's failure is reported, never the step's
                current[0].private.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
            current[0].private["sent_at"] = time.perf_counter()  # after the observer's probe: the statement alone

    def after_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if ours(conn) and "alembic_version" not in statement:
            private = current[0].private
            private["statements_s"] = private.get("statements_s", 0.0) + time.perf_counter() - private.pop(
                "sent_at", time.perf_counter())
        if ours(conn) and _DML.match(statement) and "alembic_version" not in statement:
            current[0].rows_touched += max(0, getattr(cursor, "rowcount", 0) or 0)

    def before_commit(conn: Any) -> None:
        if ours(conn):
            observer.before_commit(current[0], conn.connection)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before_execute)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after_execute)
    sa.event.listen(sa.engine.Engine, "commit", before_commit)


def narrowed_columns(watch: StepWatch, before: Snapshot, after: Snapshot, dialect: str,
                     file: str | None) -> list[Finding]:
    """Columns of tables that existed before the step whose type got narrower."""
    findings = []
    for table in watch.tables_before:
        old = {c[0]: c[1] for c in before.tables.get(table, {}).get("columns", ())}
        new = {c[0]: c[1] for c in after.tables.get(table, {}).get("columns", ())}
        for column, old_type in old.items():
            if column in new and narrower(old_type, new[column]):
                findings.append(Finding(
                    "narrow-type", ERROR, dialect, watch.revision,
                    f"narrows {table}.{column} from {old_type} to {new[column]}: stored values may not fit",
                    "observed", file=file, table=table, details={"column": column, "from": old_type,
                                                                 "to": new[column]}))
    return findings


def narrower(old: str, new: str) -> bool:
    """Whether type ``new`` holds less than ``old``: same type with a smaller length / precision / scale, a
    smaller integer, or a TEXT turned into a VARCHAR(n)."""
    a, b = _TYPE.match(old.upper()), _TYPE.match(new.upper())
    if not a or not b:
        return False
    (name_a, args_a), (name_b, args_b) = a.groups(), b.groups()
    if name_a in _INTEGERS and name_b in _INTEGERS:
        rank = {"INT": _INTEGERS.index("INTEGER")}
        return rank.get(name_b, _INTEGERS.index(name_b)) < rank.get(name_a, _INTEGERS.index(name_a))
    if name_a in ("TEXT", "MEDIUMTEXT", "LONGTEXT") and name_b in ("VARCHAR", "CHARACTER VARYING", "CHAR"):
        return True
    if name_a != name_b or not args_a or not args_b:
        return False
    old_args = [int(x) for x in args_a.split(",")]
    new_args = [int(x) for x in args_b.split(",")]
    return len(old_args) == len(new_args) and any(n < o for n, o in zip(new_args, old_args))
