"""Compare the app's models with the reflected schema of a migrated database.

Starts from alembic's autogenerate ``compare_metadata`` (tables, columns, types, nullability, server defaults,
indexes, unique constraints), with type and server-default comparison on and the dialect backend's quirks plugged
in, then adds what autogenerate does not see: primary keys, foreign-key ON DELETE / ON UPDATE, named CHECK
constraints, enum values, and a ``String()`` without length against a ``VARCHAR(n)``.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..versions import autoincrement_column, has_sequence, identity_of
from .differences import Difference
from .reflect import type_text


def _default_text(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", default)
    return str(getattr(arg, "text", arg))


def _cols(items: Iterable[Any]) -> str:
    return "(" + ", ".join(str(getattr(c, "name", c)) for c in items) + ")"


class ModelComparison:
    """Compare ``metadata`` with the database behind ``conn``, using ``backend``'s quirk hooks."""

    def __init__(self, conn: Connection, metadata: sa.MetaData | Sequence[sa.MetaData], backend: Any,
                 ignore_tables: Iterable[str] = ()) -> None:
        self.conn = conn
        #: one MetaData, or several (the app's db.metadata and a different one env.py hands to autogenerate)
        self.metadatas = [metadata] if isinstance(metadata, sa.MetaData) else list(metadata)
        self.metadata = self.metadatas[0] if len(self.metadatas) == 1 else self.metadatas
        self.model_tables = {}
        for md in self.metadatas:
            for table in md.sorted_tables:
                self.model_tables.setdefault(table.name, table)
        self.backend = backend
        self.dialect = conn.dialect
        self.ignore_tables = set(ignore_tables) | {"alembic_version"}
        #: (table, column) -> why the dialect cannot compile the model column's type (see uncreatable_columns)
        self.uncompilable: dict[tuple[str, str], str] = {}
        for table in self.model_tables.values():
            for column in table.columns:
                reason = compile_error(column.type, self.dialect)
                if reason:
                    self.uncompilable[(table.name, column.name)] = reason

    # -- alembic's autogenerate, with the dialect's quirks as comparators --------------------------------------
    def _compare_type(self, context: Any, conn_col: Any, meta_col: Any, conn_type: Any, meta_type: Any) -> bool | None:
        if (getattr(meta_col.table, "name", None), meta_col.name) in self.uncompilable:
            return False  # reported by uncreatable_columns; alembic's own comparison would compile it and crash
        if hasattr(conn_type, "enums") and isinstance(meta_type, sa.Enum):
            return False  # enum values are compared by compare_enums, with a message that lists them
        # alembic compares only the arguments both sides have: String() against VARCHAR(64) looks equal, but the
        # model then says nothing of a limit the database enforces (and MySQL cannot even create it).
        if (isinstance(meta_type, sa.String) and not isinstance(meta_type, (sa.Enum, sa.Text))
                and meta_type.length is None and getattr(conn_type, "length", None)):
            return True
        return None

    def _compare_default(self, context: Any, conn_col: Any, meta_col: Any, conn_default: str | None,
                         meta_default: Any, rendered_meta_default: str | None) -> bool:
        if identity_of(meta_col) is not None:
            return False  # an identity column: compare_identity compares it (options included)
        if conn_default is not None and conn_default.startswith("nextval(") and meta_default is None:
            return False  # PostgreSQL SERIAL: the sequence default of an autoincrement column
        return self.backend.normalize_default(conn_default) != self.backend.normalize_default(rendered_meta_default)

    def _include(self, obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name not in self.ignore_tables
        if type_ == "foreign_key_constraint":
            return False  # compare_foreign_keys reports these, options included
        table = getattr(obj, "table", None)
        return getattr(table, "name", None) not in self.ignore_tables

    def autogenerate_differences(self) -> list[Difference]:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        context = MigrationContext.configure(self.conn, opts={
            "compare_type": self._compare_type, "compare_server_default": self._compare_default,
            "include_object": self._include})
        # alembic 1.18+ reads a reflected server default's text (``.arg.text``) before it calls the comparator
        # above, and an identity column's reflected default is an ``Identity``, which has none ("'Identity' object
        # has no attribute 'arg'"): while alembic reflects, identities are left out of its view of the database;
        # compare_identity compares them, with their options.
        sa.event.listen(sa.Table, "column_reflect", _without_identity)
        try:
            return differences_from_alembic(compare_metadata(context, self.metadata), self.dialect)
        finally:
            sa.event.remove(sa.Table, "column_reflect", _without_identity)

    # -- what autogenerate does not see -----------------------------------------------------------------------
    def uncreatable_columns(self) -> list[Difference]:
        """Model columns whose type this dialect cannot compile: ``String()`` without a length on MySQL, an
        ``Enum`` without a name on PostgreSQL.

        Such models cannot create their table on this database (``db.create_all()`` fails, and so does the next
        autogenerated migration), whatever the migrations built; reported as a type difference on this database
        only, with the dialect's own reason, instead of crashing the comparison.
        """
        out = []
        reflected = _reflected_types(self.conn, {t for t, _ in self.uncompilable})
        for (table, column), reason in sorted(self.uncompilable.items()):
            if table in self.ignore_tables:
                continue
            model_type = self.model_tables[table].c[column].type if table in self.model_tables else None
            shown = type_text(model_type, self.dialect) if model_type is not None else "?"
            out.append(Difference("column", table, column, "type",
                                  f"{shown} ({self.dialect.name} cannot create it: {reason})",
                                  reflected.get((table, column))))
        return out

    def _tables(self) -> list[tuple[sa.Table, str]]:
        reflected = set(sa.inspect(self.conn).get_table_names())
        return [(t, t.name) for t in self.model_tables.values()
                if t.name in reflected and t.name not in self.ignore_tables and t.schema is None]

    def compare_primary_keys(self) -> list[Difference]:
        """Primary keys: same columns, same order (autogenerate never compares them)."""
        out = []
        inspector = sa.inspect(self.conn)
        for table, name in self._tables():
            model = tuple(c.name for c in table.primary_key.columns)
            database = tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ())
            if model != database:
                out.append(Difference("primary_key", name, table.primary_key.name or f"{name} primary key",
                                      "columns", model, database))
        return out

    def compare_autoincrement(self) -> list[Difference]:
        """Whether the database numbers new rows itself (SERIAL / identity / AUTO_INCREMENT), as the model expects.

        Autogenerate never compares it. A model integer primary key relies on it; a migration written with
        ``autoincrement=False`` makes every insert without an explicit id fail. SQLite reports nothing here
        (its rowid numbering is not a column property), so nothing is compared there.
        """
        out = []
        inspector = sa.inspect(self.conn)
        for table, name in self._tables():
            reflected = {c["name"]: c.get("autoincrement") for c in inspector.get_columns(name)}
            for column in table.columns:
                sequence = _numbering_sequence(column, self.dialect)
                if sequence is not None:  # the ORM numbers rows with nextval(sequence): the column has no default
                    if not has_sequence(self.conn, sequence.name):
                        out.append(Difference("sequence", name, sequence.name, "missing",
                                              detail=f"(numbers {name}.{column.name})"))
                    continue
                database = reflected.get(column.name)
                if not isinstance(database, bool):
                    continue
                model = autoincrement_column(table) is column
                if model != database:
                    out.append(Difference("column", name, column.name, "autoincrement", model, database))
        return out

    def compare_identity(self) -> list[Difference]:
        """Identity columns (``GENERATED … AS IDENTITY``, ``sa.Identity()``) where the database has them: the model's
        and the database's, and every option the model sets (start, increment, …), ``always`` always.

        ``db.create_all()`` makes what the model says; a chain that makes a SERIAL where the model says identity (or
        the reverse), or other options, builds a different database. Where the dialect has no identity columns
        (SQLite, MySQL: the model's identity is plain auto-numbering there) compare_autoincrement is the check.
        """
        if not getattr(self.dialect, "supports_identity_columns", False):
            return []
        out = []
        inspector = sa.inspect(self.conn)
        for table, name in self._tables():
            reflected = {c["name"]: c.get("identity") for c in inspector.get_columns(name)}
            for column in table.columns:
                if column.name not in reflected:
                    continue
                model, database = identity_of(column), reflected[column.name]
                if model is None and database is None:
                    continue
                if model is None or database is None:
                    shown = _identity_text(model)
                    if model is None and isinstance(column.default, sa.Sequence):  # the ORM numbers rows with it
                        shown = f"none (Sequence {column.default.name})"
                    out.append(Difference("column", name, column.name, "identity", shown, _identity_text(database)))
                    continue
                wanted = {k: getattr(model, k, None) for k in _IDENTITY_OPTIONS}
                differs = bool(getattr(model, "always", False)) != bool(database.get("always")) or any(
                    value is not None and value != database.get(key) for key, value in wanted.items())
                if differs:
                    out.append(Difference("column", name, column.name, "identity", _identity_text(model),
                                          _identity_text(database)))
        return out

    def compare_foreign_keys(self) -> list[Difference]:
        """Foreign keys matched by (columns → table columns), then their ON DELETE / ON UPDATE actions."""
        out = []
        inspector = sa.inspect(self.conn)
        for table, name in self._tables():
            db_fks = {(tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"])): fk
                      for fk in inspector.get_foreign_keys(name)}
            seen = set()
            for fkc in table.foreign_key_constraints:
                key = (tuple(c.name for c in fkc.columns), fkc.referred_table.name,
                       tuple(e.column.name for e in fkc.elements))
                label = fkc.name if isinstance(fkc.name, str) else None
                detail = f"{_cols(key[0])} -> {key[1]} {_cols(key[2])}"
                if key not in db_fks:
                    out.append(Difference("foreign_key", name, label or detail, "missing",
                                          detail=detail if label else ""))
                    continue
                seen.add(key)
                options = db_fks[key].get("options") or {}
                for aspect in ("ondelete", "onupdate"):
                    model_action, db_action = getattr(fkc, aspect), options.get(aspect)
                    if not self.backend.same_fk_action(model_action, db_action):
                        out.append(Difference("foreign_key", name, db_fks[key].get("name") or label or detail,
                                              "on_delete" if aspect == "ondelete" else "on_update",
                                              (model_action or "NO ACTION").upper(),
                                              (db_action or "NO ACTION").upper(), detail=detail))
            for key, fk in db_fks.items():
                if key not in seen:
                    detail = f"{_cols(key[0])} -> {key[1]} {_cols(key[2])}"
                    out.append(Difference("foreign_key", name, fk.get("name") or detail, "extra",
                                          detail=detail if fk.get("name") else ""))
        return out

    def compare_check_constraints(self) -> list[Difference]:
        """Named CHECK constraints the dialect would create for the models, against the database's.

        Compared by name only: PostgreSQL and MariaDB rewrite CHECK text, so comparing text gives false alarms.
        Which CHECKs exist at all is taken from the DDL the dialect compiles for the model table (a
        ``Boolean(create_constraint=True)`` has a CHECK on SQLite and MariaDB, none on PostgreSQL).
        """
        out = []
        inspector = sa.inspect(self.conn)
        for table, name in self._tables():
            model = self._model_check_names(table)
            try:
                reflected = inspector.get_check_constraints(name)
            except NotImplementedError:
                continue
            database = {c["name"] for c in reflected
                        if c.get("name") and not self.backend.is_implicit_check(c["name"], str(c["sqltext"]))}
            out.extend(Difference("check_constraint", name, n, "missing") for n in sorted(model - database))
            out.extend(Difference("check_constraint", name, n, "extra") for n in sorted(database - model))
        return out

    def _model_check_names(self, table: sa.Table) -> set[str]:
        """Names of the CHECKs the dialect's CREATE TABLE would hold; for a table it cannot compile (see
        :meth:`uncreatable_columns`), the model's explicitly named CHECK constraints."""
        try:
            ddl = str(sa.schema.CreateTable(table).compile(dialect=self.dialect))
        except sa.exc.CompileError:
            return {str(c.name) for c in table.constraints
                    if isinstance(c, sa.CheckConstraint) and isinstance(c.name, str)}
        return {m.strip('"`[]') for m in re.findall(r"CONSTRAINT\s+(\S+)\s+CHECK", ddl)}

    def compare_enums(self) -> list[Difference]:
        """Enum labels, where the database keeps them (PostgreSQL enum types, MySQL ENUM columns); autogenerate
        never compares them, so a label added to the model without a migration would pass unnoticed."""
        out = []
        inspector = sa.inspect(self.conn)
        for table, name in self._tables():
            db_columns = {c["name"]: c for c in inspector.get_columns(name)}
            for column in table.columns:
                model_type, db_col = column.type, db_columns.get(column.name)
                if not isinstance(model_type, sa.Enum) or db_col is None:
                    continue
                db_values = getattr(db_col["type"], "enums", None)
                if db_values is None:
                    continue  # stored as VARCHAR (+ CHECK): the labels are not kept as a type here
                if list(model_type.enums) != list(db_values):
                    out.append(Difference("enum", name, model_type.name or column.name, "values",
                                          tuple(model_type.enums), tuple(db_values), detail=f"({name}.{column.name})"))
        return out

    def differences(self) -> list[Difference]:
        """Every difference between the models and the database."""
        return (self.uncreatable_columns() + self.autogenerate_differences() + self.compare_primary_keys()
                + self.compare_autoincrement() + self.compare_identity()
                + self.compare_foreign_keys()
                + self.compare_check_constraints() + self.compare_enums())


#: identity options a model may set (``sa.Identity(start=..., ...)``), compared when it sets them
_IDENTITY_OPTIONS = ("start", "increment", "minvalue", "maxvalue", "cycle", "cache")


def _numbering_sequence(column: sa.Column, dialect: Any) -> sa.Sequence | None:
    """The model's ``Sequence`` that numbers ``column`` on this dialect (one that has sequences: PostgreSQL,
    MariaDB 10.3+), else ``None``. There ``create_all`` makes the sequence and a column without a default, and the
    ORM inserts ``nextval``; an ``optional`` sequence gives way to SERIAL / AUTO_INCREMENT."""
    default = column.default
    if isinstance(default, sa.Sequence) and not default.optional and getattr(dialect, "supports_sequences", False):
        return default
    return None


def _without_identity(inspector: Any, table: sa.Table, column_info: dict[str, Any]) -> None:
    """``column_reflect`` listener: the column as alembic's autogenerate should see it, its identity left out."""
    column_info.pop("identity", None)


def _identity_text(identity: Any) -> str | None:
    """``GENERATED BY DEFAULT AS IDENTITY (start 1, increment 1)``: a model's ``Identity`` or a reflected one (a
    dict), the options it sets; ``None`` for none."""
    if identity is None:
        return None
    get = identity.get if isinstance(identity, dict) else lambda key: getattr(identity, key, None)
    options = ", ".join(f"{key} {get(key)}" for key in ("start", "increment") if get(key) is not None)
    return (f"GENERATED {'ALWAYS' if get('always') else 'BY DEFAULT'} AS IDENTITY"
            + (f" ({options})" if options else ""))


def compile_error(type_: Any, dialect: Any) -> str | None:
    """Why ``dialect`` cannot compile ``type_`` (its own one-line message), or None when it can."""
    try:
        type_.compile(dialect=dialect)
    except sa.exc.CompileError as exc:
        return " ".join(str(exc).split())
    return None


def _reflected_types(conn: Connection, tables: set[str]) -> dict[tuple[str, str], str]:
    """``(table, column) -> type`` as the database spells it, for the given tables that exist."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    return {(t, c["name"]): type_text(c["type"], conn.dialect)
            for t in sorted(tables & present) for c in inspector.get_columns(t)}


def differences_from_alembic(diffs: Iterable[Any], dialect: Any) -> list[Difference]:
    """Every entry of alembic's diff list (column changes come nested in lists) as :class:`Difference` records."""
    out: list[Difference] = []
    for diff in diffs:
        for item in diff if isinstance(diff, list) else [diff]:
            out.extend(from_alembic(item, dialect))
    return out


def from_alembic(diff: tuple, dialect: Any) -> list[Difference]:
    """Turn one entry of alembic's ``compare_metadata`` output into :class:`Difference` records."""
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        table = diff[1]
        return [Difference("table", table.name, table.name, "missing" if kind == "add_table" else "extra")]
    if kind in ("add_column", "remove_column"):
        column = diff[3]
        return [Difference("column", diff[2], column.name, "missing" if kind == "add_column" else "extra",
                           detail=type_text(column.type, dialect))]
    if kind == "modify_type":
        return [Difference("column", diff[2], diff[3], "type", type_text(diff[6], dialect), type_text(diff[5], dialect))]
    if kind == "modify_nullable":
        return [Difference("column", diff[2], diff[3], "nullable", diff[6], diff[5])]
    if kind == "modify_default":
        return [Difference("column", diff[2], diff[3], "server_default", _default_text(diff[6]), _default_text(diff[5]))]
    if kind == "modify_comment":
        return [Difference("column", diff[2], diff[3], "comment", diff[6], diff[5])]
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        unique = "unique " if index.unique else ""
        return [Difference("index", index.table.name, index.name, "missing" if kind == "add_index" else "extra",
                           detail=f"{unique}{_cols(index.expressions)}".strip())]
    if kind in ("add_constraint", "remove_constraint"):
        constraint = diff[1]
        object_ = "unique_constraint" if isinstance(constraint, sa.UniqueConstraint) else "constraint"
        return [Difference(object_, constraint.table.name, constraint.name,
                           "missing" if kind == "add_constraint" else "extra", detail=_cols(constraint.columns))]
    if kind in ("add_fk", "remove_fk"):
        fk = diff[1]
        detail = f"{_cols(fk.columns)} -> {fk.referred_table.name}"
        named = isinstance(fk.name, str) and bool(fk.name)
        return [Difference("foreign_key", fk.parent.name, fk.name if named else detail,
                           "missing" if kind == "add_fk" else "extra", detail=detail if named else "")]
    if kind in ("add_table_comment", "remove_table_comment"):
        return [Difference("table", diff[1].name, diff[1].name, "comment", diff[1].comment, None)]
    return [Difference("other", None, kind, "differs", detail=repr(diff)[:200])]
