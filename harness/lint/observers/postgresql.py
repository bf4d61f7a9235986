"""PostgreSQL: the locks a step's transaction holds just before it commits, and which tables it rewrote.

A lock taken inside a transaction is held until the commit, so the locks held at commit time are the worst the
step does to other sessions. ``pg_locks`` for the step's own backend lists them; ``pg_class.relfilenode`` changes
when a statement rewrites the table (ALTER COLUMN TYPE, a volatile default, VACUUM FULL, CLUSTER, TRUNCATE).
A statement in an autocommit block (``CREATE INDEX CONCURRENTLY``) runs outside the step's transaction: its
short-lived locks are gone before anyone could see them, which is the point of running it there.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...backends.postgresql import CURRENT_SCHEMA
from ..findings import ERROR, WARNING, Finding
from .base import StepObserver, StepWatch

#: lock modes, weakest first; from SHARE on, writers wait, and ACCESS EXCLUSIVE makes readers wait too
MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
_BLOCKS_WRITES = MODES.index("ShareLock")

_LOCKS = """
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND c.relkind IN ('r', 'p') AND c.relnamespace = """ + CURRENT_SCHEMA + "\n"
_FILENODES = """
SELECT c.relname, c.relfilenode FROM pg_class c
WHERE c.relkind = 'r' AND c.relnamespace = """ + CURRENT_SCHEMA + "\n"


def _sql_mode(mode: str) -> str:
    """``AccessExclusiveLock`` → ``ACCESS EXCLUSIVE``: the name the documentation and LOCK TABLE use."""
    words, word = [], ""
    for char in mode.removesuffix("Lock"):
        if char.isupper() and word:
            words.append(word)
            word = ""
        word += char
    return " ".join(words + [word]).upper()


class PostgreSQLObserver(StepObserver):
    dialect = "postgresql"

    def begin_step(self, watch: StepWatch, conn: Any) -> None:
        watch.private["filenodes"] = dict(conn.execute(sa.text(_FILENODES)).fetchall())

    def before_commit(self, watch: StepWatch, dbapi_connection: Any) -> None:
        # inside the step's own transaction, behind a savepoint: should the read fail, the step must not
        cursor = dbapi_connection.cursor()
        try:
            try:
                cursor.execute("SAVEPOINT mharness_observe")
            except Exception:  # noqa: BLE001 - no transaction block (autocommit): it holds no lock to see
                return
            try:
                cursor.execute(_LOCKS)
                held = cursor.fetchall()
                cursor.execute("RELEASE SAVEPOINT mharness_observe")
            except Exception as exc:  # noqa: BLE001 - reported with the observation, never the step's failure
                cursor.execute("ROLLBACK TO SAVEPOINT mharness_observe")
                watch.private.setdefault("errors", []).append(f"pg_locks: {type(exc).__name__}: {exc}")
                return
        finally:
            cursor.close()
        for table, mode in held:
            if table not in watch.tables_before:
                continue
            info = watch.table(table)
            if mode in MODES and MODES.index(mode) > MODES.index(info.get("lock_mode", MODES[0])):
                info["lock_mode"] = mode
            elif "lock_mode" not in info:
                info["lock_mode"] = mode

    def end_step(self, watch: StepWatch, conn: Any, file: str | None) -> list[Finding]:
        before: dict[str, int] = watch.private.get("filenodes", {})
        after = dict(conn.execute(sa.text(_FILENODES)).fetchall())
        findings: list[Finding] = []
        for table, node in before.items():
            if table in after and after[table] != node:
                watch.table(table)["rewritten"] = True
                rows = watch.tables_before.get(table, 0)
                findings.append(Finding(
                    "table-rewrite", ERROR, self.dialect, watch.revision,
                    f"rewrites table {table} ({rows} rows here): every row is copied under an ACCESS EXCLUSIVE lock",
                    "observed", file=file, table=table, details={"rows": rows}))
        for table, info in watch.tables.items():
            mode = info.get("lock_mode")
            if mode not in MODES or info.get("rewritten"):
                continue
            level = MODES.index(mode)
            if mode == "AccessExclusiveLock":
                findings.append(Finding(
                    "access-exclusive-lock", WARNING, self.dialect, watch.revision,
                    f"holds an ACCESS EXCLUSIVE lock on {table} until the step commits: reads and writes of "
                    f"{table} wait", "observed", file=file, table=table, details={"lock": _sql_mode(mode)}))
            elif level >= _BLOCKS_WRITES:
                findings.append(Finding(
                    "blocks-writes", WARNING, self.dialect, watch.revision,
                    f"holds a {_sql_mode(mode)} lock on {table} until the step commits: writes to {table} wait",
                    "observed", file=file, table=table, details={"lock": _sql_mode(mode)}))
        for info in watch.tables.values():
            if "lock_mode" in info:
                info["lock"] = _sql_mode(info.pop("lock_mode"))
        return findings
