"""MySQL / MariaDB: for each ALTER TABLE (and CREATE / DROP INDEX) a step runs on an existing table, whether the
server can do it ``ALGORITHM=INSTANT``, or ``INPLACE`` with ``LOCK=NONE``, or only by copying the table.

The server itself answers: just before the statement runs, the same change is tried on an empty copy of the
table (``CREATE TABLE … LIKE``) with each algorithm in turn, and the server refuses the ones it cannot do
(``ER_ALTER_OPERATION_NOT_SUPPORTED``). The copy is dropped at once. MySQL also commits every DDL statement by
itself, so a step of several DDL statements that fails half-way stays half-applied.
"""
from __future__ import annotations

import itertools
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from ...versions import exec_driver_sql
from ..findings import ERROR, INFO, Finding
from .base import StepObserver, StepWatch

_NAME = r"(`(?:[^`]|``)+`|\w+)"
_ALTER = re.compile(rf"^\s*ALTER\s+TABLE\s+{_NAME}\s+(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_CREATE_INDEX = re.compile(rf"^\s*CREATE\s+((?:UNIQUE|FULLTEXT|SPATIAL)\s+)?INDEX\s+{_NAME}\s+ON\s+{_NAME}\s*(.*?)\s*;?\s*$",
                           re.IGNORECASE | re.DOTALL)
_DROP_INDEX = re.compile(rf"^\s*DROP\s+INDEX\s+{_NAME}\s+ON\s+{_NAME}\s*;?\s*$", re.IGNORECASE)
_DDL = re.compile(r"^\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)
_TABLE_RENAME = re.compile(r"(^|,)\s*RENAME\s+(TO|AS)?\s*(?!COLUMN\b|INDEX\b|KEY\b)", re.IGNORECASE)
#: the server cannot do it with that algorithm / lock (MySQL and MariaDB share the codes)
_NOT_WITH_THIS_ALGORITHM = {1845, 1846, 1800, 1801}
_ALGORITHMS = (("INSTANT", "ALGORITHM=INSTANT"), ("INPLACE", "ALGORITHM=INPLACE, LOCK=NONE"))
_probes = itertools.count(1)


def _bare(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def alter_clause(statement: str) -> tuple[str, str] | None:
    """``(table, what)`` such that ``ALTER TABLE <table> <what>`` does what ``statement`` does; ``None`` for a
    statement that is not an ALTER of a table's columns / indexes, or renames the table (always instant)."""
    match = _ALTER.match(statement)
    if match:
        table, what = _bare(match.group(1)), match.group(2)
        return None if _TABLE_RENAME.search(what) else (table, what)
    match = _CREATE_INDEX.match(statement)
    if match:
        kind, index, table, columns = match.groups()
        return _bare(table), f"ADD {(kind or '').strip().upper()} INDEX {index} {columns}".replace("  ", " ")
    match = _DROP_INDEX.match(statement)
    if match:
        return _bare(match.group(2)), f"DROP INDEX {match.group(1)}"
    return None


class MySQLObserver(StepObserver):
    dialect = "mysql"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self._probe_engine: Any = None

    def owns(self, engine: Any) -> bool:
        return engine is self._probe_engine

    def _probe_connection(self) -> Any:
        if self._probe_engine is None:
            self._probe_engine = sa.create_engine(self.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        return self._probe_engine.connect()

    def before_statement(self, watch: StepWatch, statement: str, dbapi_connection: Any) -> None:
        if _DDL.match(statement):
            watch.private["ddl"] = watch.private.get("ddl", 0) + 1
        found = alter_clause(statement)
        if not found or found[0] not in watch.tables_before:
            return
        table, what = found
        algorithm, reason = self.probe(table, what)
        alters = watch.table(table).setdefault("alters", [])
        alters.append({"statement": " ".join(statement.split())[:300], "algorithm": algorithm,
                       **({"reason": reason} if reason else {})})

    def probe(self, table: str, what: str) -> tuple[str, str | None]:
        """The best algorithm the server accepts for ``ALTER TABLE <table> <what>``: ``INSTANT``, ``INPLACE``
        (with LOCK=NONE) or ``COPY``; ``unknown`` (with the reason) when the probe itself could not run."""
        probe = f"mharness_probe_{next(_probes)}"
        with self._probe_connection() as conn:
            conn.execute(sa.text("SET SESSION lock_wait_timeout = 5"))
            try:
                exec_driver_sql(conn, f"CREATE TABLE `{probe}` LIKE `{table}`")
            except sa.exc.DBAPIError as exc:
                return "unknown", _reason(exc)
            try:
                for algorithm, clause in _ALGORITHMS:
                    try:
                        exec_driver_sql(conn, f"ALTER TABLE `{probe}` {what}, {clause}".replace("%", "%%"))
                        return algorithm, None
                    except sa.exc.DBAPIError as exc:
                        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                        if code not in _NOT_WITH_THIS_ALGORITHM:
                            return "unknown", _reason(exc)
                return "COPY", None
            finally:
                exec_driver_sql(conn, f"DROP TABLE IF EXISTS `{probe}`")

    def end_step(self, watch: StepWatch, conn: Any, file: str | None) -> list[Finding]:
        findings: list[Finding] = []
        for table, info in watch.tables.items():
            rows = info.get("rows", 0)
            for alter in info.get("alters", ()):
                if alter["algorithm"] == "COPY":
                    findings.append(Finding(
                        "table-copy", ERROR, self.dialect, watch.revision,
                        f"the server can only copy table {table} ({rows} rows here) for this change, blocking "
                        f"writes to it meanwhile: neither ALGORITHM=INSTANT nor INPLACE with LOCK=NONE is possible",
                        "observed", file=file, table=table, statement=alter["statement"]))
                elif alter["algorithm"] == "INPLACE":
                    findings.append(Finding(
                        "inplace-rebuild", INFO, self.dialect, watch.revision,
                        f"runs INPLACE on {table} ({rows} rows here), not INSTANT: writes go on, but the whole "
                        "table is read or rebuilt", "observed", file=file, table=table, statement=alter["statement"]))
        ddl = watch.private.get("ddl", 0)
        if ddl > 1:
            findings.append(Finding(
                "non-transactional-ddl", INFO, self.dialect, watch.revision,
                f"runs {ddl} DDL statements, each committed on its own: if one fails, the ones before it stay "
                "applied and alembic_version still names the previous revision", "observed", file=file,
                details={"ddl_statements": ddl}))
        return findings

    def close(self) -> None:
        if self._probe_engine is not None:
            self._probe_engine.dispose()


def _reason(exc: sa.exc.DBAPIError) -> str:
    return " ".join(str(exc.orig if exc.orig is not None else exc).split())[:200]
