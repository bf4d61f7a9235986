"""Worker side of the proofs: what each pending step does to existing data, recorded as it runs on the copy.

Every alembic operation a migration invokes (``op.add_column``, ``batch_op.alter_column``, ``op.create_unique_
constraint``, ...) passes through ``Operations.invoke``; the recorder wraps it and keeps, per step, a plain-data
*fact* for each operation whose success can depend on the rows already in a table (see :mod:`harness.rehearse.
proofs`, which turns the facts into read-only questions for production). Statements a step sends outside a known
operation (``op.execute(...)``, ``op.get_bind().execute(...)``, a custom operation) are recorded from the SQL itself:
a data migration reads or writes rows, and DDL the harness cannot analyse is said to be so.

Facts are JSON-able dicts with an ``op`` key:

* ``add_column`` — ``table``, ``column``, ``nullable``, ``server_default`` (SQL text or null), ``type``,
  ``unique``, ``foreign_keys`` ([{``columns``, ``referent``, ``referent_columns``}]), ``checks`` ([SQL])
* ``alter_column`` — ``table``, ``column``, ``new_name``, ``nullable`` (true/false/null: unchanged), ``type``
  (null: unchanged), ``using`` (PostgreSQL ``USING`` text), ``existing_type``
* ``unique`` — ``table``, ``columns``, ``name``, ``nulls_not_distinct``, ``primary_key`` (also NOT NULL), or
  ``expressions`` when an index is on expressions
* ``foreign_key`` — ``table``, ``columns``, ``referent``, ``referent_columns``, ``not_valid``
* ``check`` — ``table``, ``name``, ``condition`` (SQL text, compiled for the dialect), ``not_valid``
* ``create_table`` / ``drop_table`` / ``rename_table`` (``table``, ``new_name``) / ``drop_column``
* ``bulk_insert`` — ``table``, ``rows``
* ``sql`` — ``statement`` (SQL, shortened; numeric parameters written in when the step sent it with one set of
  values), ``raw`` (as sent, with its placeholders), ``kind`` (``read``, ``write``, ``ddl``), ``tables``, ``rows``
  (rows changed on the copy)
"""
from __future__ import annotations

import re
from typing import Any, Callable

import sqlalchemy as sa

#: statements that only read the catalogue (migrations that inspect the schema) or set up the session
_CATALOGUE = re.compile(
    r"\b(pg_catalog|information_schema|pg_class|pg_namespace|pg_type|pg_enum|pg_constraint|pg_index|pg_attribute|"
    r"sqlite_master|sqlite_schema|sqlite_sequence|performance_schema|mysql\.)\b|^\s*(PRAGMA|SHOW|SET|SAVEPOINT|"
    r"RELEASE|ROLLBACK|BEGIN|COMMIT|DESCRIBE)\b|^\s*SELECT\s+(version|current_schema|current_database|database|"
    r"@@|pg_|sqlite_version|1\b)", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(WITH\b.*?\)\s*)?(INSERT|UPDATE|DELETE|REPLACE|MERGE)\b", re.IGNORECASE | re.DOTALL)
_READ = re.compile(r"^\s*(\(\s*)?(SELECT|WITH)\b", re.IGNORECASE)
_TABLES = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|TABLE|ON)\s+(?:ONLY\s+|IF\s+(?:NOT\s+)?EXISTS\s+)?"
                     r"([`\"\[]?[\w$]+[`\"\]]?(?:\.[`\"\[]?[\w$]+[`\"\]]?)?)", re.IGNORECASE)
_VERSION_TABLE = "alembic_version"
_SQL_WORDS = {"select", "set", "where", "values", "lateral", "only", "the", "default"}


def type_info(type_: Any, dialect: Any) -> dict[str, Any] | None:
    """A SQLAlchemy type as plain data: its family and the limits a stored value must fit."""
    if type_ is None or isinstance(type_, sa.types.NullType):
        return None
    info: dict[str, Any] = {"class": type(type_).__name__}
    try:
        info["sql"] = type_.compile(dialect=dialect)
    except Exception:  # noqa: BLE001 - a type this dialect cannot render: the family still says enough
        info["sql"] = type(type_).__name__.upper()
    if isinstance(type_, sa.Enum):
        info.update(family="enum", labels=list(type_.enums), native=bool(getattr(type_, "native_enum", True)),
                    constraint=bool(getattr(type_, "create_constraint", False)))
    elif isinstance(type_, sa.Boolean):
        info["family"] = "boolean"
    elif isinstance(type_, sa.String):
        info.update(family="string", length=getattr(type_, "length", None))
    elif isinstance(type_, sa.Integer):
        bits = 16 if isinstance(type_, sa.SmallInteger) else 64 if isinstance(type_, sa.BigInteger) else 32
        text = info["sql"].upper()
        if text.startswith("TINYINT"):
            bits = 8
        elif text.startswith("MEDIUMINT"):
            bits = 24
        info.update(family="integer", bits=bits)
    elif isinstance(type_, sa.Float):
        info["family"] = "float"
    elif isinstance(type_, sa.Numeric):
        info.update(family="numeric", precision=type_.precision, scale=type_.scale)
    elif isinstance(type_, sa.DateTime):
        info["family"] = "datetime"
    elif isinstance(type_, sa.Date):
        info["family"] = "date"
    elif isinstance(type_, sa.Time):
        info["family"] = "time"
    elif isinstance(type_, (sa.LargeBinary,)):
        info.update(family="binary", length=getattr(type_, "length", None))
    else:
        info["family"] = "other"
    return info


def statement_tables(statement: str) -> list[str]:
    """The table names a SQL statement names after FROM / JOIN / UPDATE / INTO / TABLE (unquoted, no schema)."""
    names: list[str] = []
    for raw in _TABLES.findall(statement):
        name = raw.split(".")[-1].strip('`"[]')
        if name.lower() not in _SQL_WORDS and name != _VERSION_TABLE and name not in names and not name[0].isdigit():
            names.append(name)
    return names


def classify_statement(statement: str) -> str | None:
    """``read`` / ``write`` / ``ddl`` for a statement a step sent outside a known operation; None for catalogue
    reads, session settings and alembic's own ``alembic_version`` bookkeeping."""
    text = statement.strip()
    if not text or _CATALOGUE.search(text):
        return None
    if re.search(rf"\b{_VERSION_TABLE}\b", text) and not re.search(r"\bJOIN\b", text, re.IGNORECASE):
        return None
    if _WRITE.match(text):
        return "write"
    if _READ.match(text):
        return "read" if statement_tables(text) else None
    return "ddl"


class Recorder:
    """Wraps alembic's ``invoke`` (and batch mode's ``flush``) once per worker; ``facts`` is the current step's."""

    def __init__(self, dialect: Any, scratch_url: Any, on_scratch: Callable[[Any, Any], bool]) -> None:
        self.dialect = dialect
        self.facts: list[dict[str, Any]] = []
        self._sent = {}
        self.active = False
        self._depth = 0  # > 0 while a known operation (or a batch flush) runs: its SQL is the operation's
        self._install()
        scratch = scratch_url

        def after_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                          many: bool) -> None:
            if self.active and self._depth == 0 and on_scratch(conn, scratch):
                inlined = None if many else inline_numbers(statement, parameters,
                                                           getattr(conn.dialect, "paramstyle", ""))
                self._statement(statement, getattr(cursor, "rowcount", -1), inlined)

        sa.event.listen(sa.engine.Engine, "after_cursor_execute", after_execute)

    def start_step(self) -> None:
        self.facts = []
        self._sent: dict[str, set[str]] = {}
        self.active = True

    def stop(self) -> list[dict[str, Any]]:
        self.active = False
        return self.facts

    # -- alembic hooks -------------------------------------------------------------------------------------
    def _install(self) -> None:
        from alembic.operations import Operations
        from alembic.operations.batch import BatchOperationsImpl

        owner = next(k for k in Operations.__mro__ if "invoke" in vars(k))
        original_invoke = owner.invoke
        recorder = self

        def invoke(operations: Any, operation: Any) -> Any:
            known = recorder.active and recorder._record(operation)
            if known:
                recorder._depth += 1
            try:
                return original_invoke(operations, operation)
            finally:
                if known:
                    recorder._depth -= 1

        owner.invoke = invoke  # type: ignore[method-assign]
        original_flush = BatchOperationsImpl.flush

        def flush(impl: Any) -> None:  # a batch recreate copies rows: the operations it carries were recorded
            recorder._depth += 1
            try:
                original_flush(impl)
            finally:
                recorder._depth -= 1

        BatchOperationsImpl.flush = flush  # type: ignore[method-assign]

    def _record(self, operation: Any) -> bool:
        """Keep the fact(s) of ``operation``; whether it is an operation the proofs understand (its SQL is then
        not recorded again as statements)."""
        from alembic.operations import ops

        add = self.facts.append
        if isinstance(operation, ops.ExecuteSQLOp):
            return False  # its statements are recorded from the SQL
        if isinstance(operation, ops.AddColumnOp):
            column = operation.column
            add({"op": "add_column", "table": operation.table_name, "column": column.name,
                 "nullable": bool(column.nullable), "server_default": self._default(column.server_default),
                 "type": type_info(column.type, self.dialect),
                 "unique": bool(column.unique) or any(isinstance(c, sa.UniqueConstraint) for c in column.constraints),
                 "primary_key": bool(column.primary_key),
                 "foreign_keys": [{"columns": [column.name], "referent": fk.target_fullname.split(".")[-2],
                                   "referent_columns": [fk.target_fullname.split(".")[-1]]}
                                  for fk in column.foreign_keys],
                 "checks": [self._sql(c.sqltext) for c in column.constraints
                            if isinstance(c, sa.CheckConstraint)]})
            return True
        if isinstance(operation, ops.AlterColumnOp):
            kw = operation.kw or {}
            nullable = operation.modify_nullable
            add({"op": "alter_column", "table": operation.table_name, "column": operation.column_name,
                 "new_name": operation.modify_name, "nullable": None if nullable is None else bool(nullable),
                 "type": type_info(operation.modify_type, self.dialect),
                 "existing_type": type_info(operation.existing_type, self.dialect),
                 # postgresql_using is PostgreSQL's alone: every other dialect ignores it
                 "using": self._sql(kw["postgresql_using"]) if kw.get("postgresql_using") is not None
                 and self.dialect.name == "postgresql" else None})
            return True
        if isinstance(operation, ops.CreateUniqueConstraintOp):
            kw = operation.kw or {}
            add({"op": "unique", "table": operation.table_name, "columns": list(operation.columns),
                 "name": _name(operation.constraint_name), "primary_key": False,
                 "nulls_not_distinct": bool(kw.get("postgresql_nulls_not_distinct"))})
            return True
        if isinstance(operation, ops.CreatePrimaryKeyOp):
            add({"op": "unique", "table": operation.table_name, "columns": list(operation.columns),
                 "name": _name(operation.constraint_name), "primary_key": True, "nulls_not_distinct": False})
            return True
        if isinstance(operation, ops.CreateIndexOp):
            if operation.unique:
                columns = [c for c in operation.columns if isinstance(c, str)]
                others = [self._sql(c) for c in operation.columns if not isinstance(c, str)]
                add({"op": "unique", "table": operation.table_name, "columns": columns, "expressions": others,
                     "name": _name(operation.index_name), "primary_key": False,
                     "nulls_not_distinct": bool((operation.kw or {}).get("postgresql_nulls_not_distinct"))})
            return True
        if isinstance(operation, ops.CreateForeignKeyOp):
            kw = operation.kw or {}
            add({"op": "foreign_key", "table": operation.source_table, "columns": list(operation.local_cols),
                 "referent": operation.referent_table, "referent_columns": list(operation.remote_cols),
                 "name": _name(operation.constraint_name), "not_valid": bool(kw.get("postgresql_not_valid"))})
            return True
        if isinstance(operation, ops.CreateCheckConstraintOp):
            kw = operation.kw or {}
            add({"op": "check", "table": operation.table_name, "name": _name(operation.constraint_name),
                 "condition": self._sql(operation.condition), "not_valid": bool(kw.get("postgresql_not_valid"))})
            return True
        if isinstance(operation, ops.CreateTableOp):
            add({"op": "create_table", "table": operation.table_name})
            return True
        if isinstance(operation, ops.DropTableOp):
            add({"op": "drop_table", "table": operation.table_name})
            return True
        if isinstance(operation, ops.RenameTableOp):
            add({"op": "rename_table", "table": operation.table_name, "new_name": operation.new_table_name})
            return True
        if isinstance(operation, ops.DropColumnOp):
            add({"op": "drop_column", "table": operation.table_name, "column": operation.column_name})
            return True
        if isinstance(operation, ops.BulkInsertOp):
            add({"op": "bulk_insert", "table": operation.table.name, "rows": len(operation.rows or ())})
            return True
        # drops of constraints and indexes, comments, and what alembic adds later: no existing row can make
        # them fail; anything else (a custom operation) is recorded from the SQL it sends
        return isinstance(operation, (ops.DropConstraintOp, ops.DropIndexOp)) or type(operation).__module__ == ops.__name__

    def _statement(self, statement: str, rowcount: int, inlined: str | None = None) -> None:
        """Record a statement; ``inlined`` is it with its numeric parameters written in (countable on production),
        kept only while the step sends it with one set of values: a statement sent in a loop with values taken from
        rows is recorded with its placeholders each time."""
        kind = classify_statement(statement)
        if kind is None:
            return
        raw = _short(" ".join(statement.split()))
        text = _short(" ".join(inlined.split())) if inlined else raw
        sent = self._sent.setdefault(raw, set())
        sent.add(text)
        if len(sent) > 1:
            text = raw
            for fact in self.facts:
                if fact.get("raw") == raw:
                    fact["statement"] = raw
        self.facts.append({"op": "sql", "kind": kind, "statement": text, "raw": raw,
                           "tables": statement_tables(raw), "rows": max(rowcount or 0, 0)})

    def _sql(self, clause: Any) -> str:
        if isinstance(clause, str):
            return clause
        if hasattr(clause, "compile"):
            try:
                return str(clause.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
            except Exception:  # noqa: BLE001 - an expression this dialect cannot render literally
                return str(clause)
        return str(clause)

    def _default(self, default: Any) -> str | None:
        if default is None:
            return None
        arg = getattr(default, "arg", default)
        return self._sql(arg)


def _short(text: str) -> str:
    return text if len(text) <= 300 else text[:297] + "..."


def inline_numbers(statement: str, parameters: Any, paramstyle: str) -> str | None:
    """``statement`` with its parameters written in, when every one is a number or NULL and the driver formats them
    with ``%`` (psycopg2, PyMySQL, mysqlclient): ``UPDATE domain SET max_users=(-1) WHERE domain.max_users = 0`` can
    then be counted on production. None otherwise (a string could be a value of a production row: it is not copied
    into the report)."""
    if not parameters or paramstyle not in ("pyformat", "format") or "%" not in statement:
        return None
    values = list(parameters.values()) if isinstance(parameters, dict) else list(parameters) \
        if isinstance(parameters, (tuple, list)) else None
    if values is None or not all(_number(v) for v in values):
        return None
    literal = {k: _literal(v) for k, v in parameters.items()} if isinstance(parameters, dict) \
        else tuple(_literal(v) for v in values)
    try:
        return statement % literal
    except (TypeError, ValueError, KeyError):
        return None


def _number(value: Any) -> bool:
    import decimal
    import math

    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        return False
    return math.isfinite(value) if isinstance(value, float) else not (isinstance(value, decimal.Decimal)
                                                                        and not value.is_finite())


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    text = repr(value) if isinstance(value, float) else str(value)
    return f"({text})" if text.startswith("-") else text


def _name(name: Any) -> str | None:
    return str(name) if name is not None else None
