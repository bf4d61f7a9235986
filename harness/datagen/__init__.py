"""Fill every table of a database with a few generated rows that respect its *reflected* schema.

Why: many migrations only fail when rows exist (a NOT NULL column added without a default, a unique index over
duplicated values, a type narrowed below the stored data). The ``data`` check therefore calls
:func:`fill_database` before each upgrade step and :func:`count_rows` after it. The schema is reflected each time,
never taken from the models, because the point is the database as the previous revision left it.

Design choices, each for a reason spelled out where it is made:

* every value is a function of a per-table *row serial* ``k`` (starting at the table's current row count) and of
  a ``random.Random`` seeded from ``seed``, the table name and ``k``: deterministic, yet repeated calls produce
  new values instead of colliding with the rows the previous step left behind;
* columns that take part in a primary key, unique constraint or unique index get values injective in ``k`` and are
  also checked against the values already stored, so accumulated rows never violate uniqueness;
* nullable columns hold values in most rows but NULL in one row per call (``nulls`` narrows which), foreign keys
  point at existing parent rows whenever there are some (NULL only when there is no parent yet), and server
  defaults are used on every
  other row: both mirror real data and both are what "alter to NOT NULL" / "change the default" migrations trip on;
* a table that cannot be filled (a CHECK we cannot satisfy, a type we cannot produce) is retried once with
  alternate values and then reported in :attr:`FillResult.skipped` with the database's message, never raised.

Layer: it may import ``backends/``, ``config/`` and the plain modules ``errors``, ``results``, ``versions``,
``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations

import datetime as dt
import random
import re
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..versions import autoincrement_column, copy_table, identity_of, select
from .values import _Exhausted, _value

DEFAULT_EXCLUDE = ("alembic_version",)
_ATTEMPTS_PER_ROW = 20


@dataclass(frozen=True)
class FillResult:
    """What one :func:`fill_database` call did: rows inserted per table, and why other tables got none."""

    inserted: dict[str, int]
    skipped: dict[str, str]


class _Unfillable(Exception):
    """A table cannot get rows for a reason known before touching the database (reported, not raised)."""


@dataclass(frozen=True)
class _ColumnPlan:
    column: sa.Column[Any]
    position: int
    unique: bool  # in a PK / unique constraint / unique index: value must be injective in the row serial
    choices: tuple[Any, ...]  # enum labels or a CHECK's IN-list; empty when the type alone decides
    omit_sometimes: bool  # has a server default the database may fill in
    may_be_null: bool  # nullable, and NULLs are wanted there (see fill_database's ``nulls``)


@dataclass(frozen=True)
class _ForeignKey:
    columns: tuple[str, ...]
    referred: tuple[sa.Column[Any], ...]
    nullable: bool
    position: int
    self_reference: bool


NullPolicy = Callable[[str, str], bool]


#: every table the data check reflected in this process, by dialect, name and fingerprint (see
#: :attr:`Reflected.library`); emptied when it holds :data:`_LIBRARY_MAX`
LIBRARY: dict[tuple[str, str, str], sa.Table] = {}
_LIBRARY_MAX = 4000


@dataclass
class Reflected:
    """Tables reflected by earlier :func:`fill_database` calls on one database, each with the catalogue fingerprint
    it had then (:meth:`harness.backends.Backend.table_fingerprints`). The data check fills before every step of a
    chain and a step changes a table or two: the others are the same as last time, and were reflected already.

    A table whose fingerprint changed or is unknown is reflected again. So is every table whose foreign key points
    at one that is (its reflection holds the old table's columns), unless its own fingerprint is in the
    :attr:`library`: then it is a copy of that table, whose foreign keys find the new one by name. A library (the
    worker's, :data:`LIBRARY`, for every session it serves) holds each table state reflected before, by its
    fingerprint; the data check's NULL probes replay the chain on a fresh database, and reflect nothing the check
    reflected already. Only where the fingerprint says everything the reflection holds of the table, its foreign
    keys' referred columns included (PostgreSQL's and MySQL's catalogue text name them; SQLite's ``REFERENCES
    users`` leaves them to the referred table's primary key, whatever it is now): ``None``, no library."""

    metadata: sa.MetaData = field(default_factory=sa.MetaData)
    marks: dict[str, str] = field(default_factory=dict)
    library: dict[tuple[str, str, str], sa.Table] | None = None

    def recall(self, dialect: str, load: list[str], marks: dict[str, str], listed: Iterable[str]) -> list[str]:
        """Copy into :attr:`metadata` every table of ``load`` the library holds at its fingerprint in ``marks``;
        the rest, to reflect, with every table a copy refers to that is not there (reflecting the table would have
        loaded it). A table whose foreign key points out of the database's ``listed`` tables (another schema's, or
        one that is gone) is reflected, as before."""
        if self.library is None:
            return load
        present = set(listed)
        rest, copied = [], []
        for name in load:
            known = self.library.get((dialect, name, marks.get(name, "")))
            if known is None or not all(_referred_name(c) in present and "." not in _referred_table(c)
                                        for c in known.foreign_key_constraints):
                rest.append(name)
            else:
                copied.append(copy_table(known, self.metadata))
        for table in copied:
            for constraint in table.foreign_key_constraints:
                referred = _referred_name(constraint)
                if referred not in self.metadata.tables and referred not in rest:
                    rest.append(referred)
        return rest

    def keep(self, marks: dict[str, str]) -> None:
        """Drop every table that must be reflected again, given the database's fingerprints now."""
        stale = {name for name in self.metadata.tables
                 if marks.get(name) is None or marks[name] != self.marks.get(name)}
        while True:
            more = {table.name for table in self.metadata.tables.values() if table.name not in stale
                    and any(_referred_name(fkc) in stale for fkc in table.foreign_key_constraints)}
            if not more:
                break
            stale |= more
        for name in stale:
            self.metadata.remove(self.metadata.tables[name])
            self.marks.pop(name, None)

    def note(self, dialect: str, marks: dict[str, str]) -> None:
        """Remember the fingerprint of every table new in :attr:`metadata`, and put it in the library."""
        if self.library is not None and len(self.library) >= _LIBRARY_MAX:
            self.library.clear()
        for name, table in self.metadata.tables.items():
            if name not in self.marks and marks.get(name) is not None:
                self.marks[name] = marks[name]
                if self.library is not None:
                    self.library.setdefault((dialect, name, marks[name]), table)


def _referred_table(constraint: sa.ForeignKeyConstraint) -> str:
    """The referred table as the foreign key names it (``schema.table`` for another schema's), unresolved."""
    target = constraint.elements[0].target_fullname if constraint.elements else ""
    return target.rsplit(".", 1)[0]


def _referred_name(constraint: sa.ForeignKeyConstraint) -> str:
    """The referred table's name, without resolving it (it may be gone from the MetaData)."""
    return _referred_table(constraint).rsplit(".", 1)[-1]


def fill_database(conn: Connection, rows_per_table: int = 3, *, seed: int = 0,
                  exclude: Iterable[str] = DEFAULT_EXCLUDE, nulls: NullPolicy | None = None,
                  reflected: Reflected | None = None, marks: dict[str, str] | None = None,
                  names: Iterable[str] | None = None) -> FillResult:
    """Insert ``rows_per_table`` rows into every reflected table, parents before children.

    ``nulls(table, column)`` says whether a nullable column may get its generated NULL (default: every one); the
    data check narrows it to tell a migration that breaks on NULLs the schema allows from one that breaks anyway.

    ``reflected`` with ``marks`` (the tables' fingerprints, just taken on ``conn``): reuse the tables an earlier
    call reflected that have not changed since (:class:`Reflected`). ``names``: the database's tables, when the
    caller has just read them (else the Inspector's ``get_table_names()``).

    ``conn`` must not be inside a transaction: each table is filled in its own ``conn.begin()`` block so a failed
    table rolls back alone. Savepoints would allow an outer transaction, but pysqlite's savepoint support needs
    engine-level event hooks we do not own, and MySQL commits DDL implicitly anyway.
    """
    if conn.in_transaction():
        raise ValueError("fill_database needs a Connection outside a transaction; it commits one per table")
    excluded = set(exclude)
    if reflected is not None and marks:  # the tables whose fingerprint is unchanged are not reflected again
        reflected.keep(marks)
        metadata = reflected.metadata
    else:
        metadata = sa.MetaData()
    with conn.begin(), _quiet():
        listed = list(sa.inspect(conn).get_table_names() if names is None else names)
        load = [name for name in listed if name not in excluded and name not in metadata.tables]
        if reflected is not None and marks:
            load = reflected.recall(conn.dialect.name, load, marks, listed)
        if load:  # (SQLAlchemy 2 given nothing to load reads the catalogue of every table all the same)
            metadata.reflect(bind=conn, only=load)
    if reflected is not None and marks:
        reflected.note(conn.dialect.name, marks)
    tables = [t for t in _fill_order(metadata) if t.name not in excluded]
    inserted: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for table in tables:
        outcome = _fill_with_retry(conn, table, rows_per_table, seed, nulls)
        if isinstance(outcome, int):
            inserted[table.name] = outcome
        else:
            skipped[table.name] = outcome
    return FillResult(inserted=inserted, skipped=skipped)


def _fill_with_retry(conn: Connection, table: sa.Table, wanted: int, seed: int, nulls: NullPolicy | None) -> int | str:
    """Rows inserted, or why none could be. A refused insert (a CHECK, a type we guessed wrong, a value the
    driver cannot bind) is retried once with the alternate values; the *first* error is reported, since the
    alternates are only a guess."""
    first_error: str | None = None
    for alternate in (False, True):
        try:
            with conn.begin():
                count = _fill_table(conn, table, wanted, seed, alternate, nulls)
        except _Unfillable as exc:
            return str(exc)
        except sa.exc.SQLAlchemyError as exc:
            if getattr(exc, "connection_invalidated", False):
                raise  # the server went away: the harness reports that, it is not this table's problem
            first_error = first_error or _first_line(exc)
            continue
        if count or not wanted:
            return count
        return first_error or "no distinct values left for its unique columns"
    return first_error or "refused"


#: tables counted per statement (SQLite allows 500 terms in a compound SELECT)
_COUNTED_AT_ONCE = 100


def count_rows(conn: Connection, exclude: Iterable[str] = DEFAULT_EXCLUDE,
               names: Iterable[str] | None = None) -> dict[str, int]:
    """Row count of every table but ``exclude``; works inside or outside a caller's transaction. ``names``: the
    database's tables, when the caller has just read them (else the Inspector's ``get_table_names()``).

    One statement for up to :data:`_COUNTED_AT_ONCE` tables (``SELECT count(*) FROM a UNION ALL SELECT ...``): the
    data check counts every table before and after every step, and a round trip per table was most of its cost on
    a chain with a few dozen tables."""
    excluded = set(exclude)
    scope = nullcontext() if conn.in_transaction() else conn.begin()
    with scope:
        listed = sa.inspect(conn).get_table_names() if names is None else names
        tables = sorted(n for n in listed if n not in excluded)
        counts: dict[str, int] = {}
        for start in range(0, len(tables), _COUNTED_AT_ONCE):
            chunk = tables[start:start + _COUNTED_AT_ONCE]
            counts.update((chunk[i], n) for i, n in conn.execute(sa.union_all(*(
                select(sa.literal(i).label("i"), sa.func.count().label("n")).select_from(sa.table(name))
                for i, name in enumerate(chunk)))))
        return {n: counts[n] for n in tables}


# --------------------------------------------------------------------------------------------------- one table

def _fill_table(conn: Connection, table: sa.Table, wanted: int, seed: int, alternate: bool,
                nulls: NullPolicy | None) -> int:
    """Insert up to ``wanted`` rows one by one (so a self-reference can point at the row just inserted)."""
    start = conn.execute(select(sa.func.count()).select_from(table)).scalar()
    rng = random.Random(f"{seed}:{table.name}:{start}:{alternate}")
    salt = rng.getrandbits(60)
    fks = _foreign_keys(table)
    fk_columns = {name for fk in fks for name in fk.columns}
    plans = [p for p in _column_plans(table, nulls) if p.column.name not in fk_columns]
    unique_sets = _unique_sets(table)
    seen = {cols: {_key(row) for row in conn.execute(select(*(table.c[c] for c in cols)))} for cols in unique_sets}
    parents = [_existing_rows(conn, fk.referred) for fk in fks]
    k, done = start, 0
    for _ in range(wanted * _ATTEMPTS_PER_ROW):
        if done == wanted:
            break
        try:
            row = {p.column.name: _planned_value(p, k, done, wanted, seed, rng, salt, alternate)
                   for p in plans if not _omitted(p, done)}
        except _Exhausted:
            break
        for fk, rows in zip(fks, parents):
            row.update(_foreign_values(fk, rows, row, k))
        k += 1
        keys = {cols: _key(tuple(row.get(c) for c in cols)) for cols in unique_sets}
        if any(None not in key and key in seen[cols] for cols, key in keys.items()):
            continue
        # null() rather than None: a JSON column would store None as the JSON document 'null', not SQL NULL.
        result = conn.execute(table.insert().values({c: sa.null() if v is None else v for c, v in row.items()}))
        for cols, key in keys.items():
            seen[cols].add(key)
        _remember_self_reference(table, fks, parents, row, result.inserted_primary_key)
        done += 1
    return done


def _fill_order(metadata: sa.MetaData) -> list[sa.Table]:
    """Parents before children. In a foreign-key cycle, break the *nullable* edges: that table is filled first
    with NULL there (its parents do not exist yet) and gets real references on the next call, whereas breaking
    a NOT NULL edge would leave the other table unfillable. SQLAlchemy alone breaks every edge of a cycle."""
    tables = list(metadata.tables.values())
    cyclic = set(sa.schema.sort_tables_and_constraints(tables)[-1][1])
    def nullable_in_cycle(fkc: sa.ForeignKeyConstraint) -> bool | None:
        return True if fkc in cyclic and all(c.nullable for c in fkc.columns) else None
    return [t for t, _ in sa.schema.sort_tables_and_constraints(tables, filter_fn=nullable_in_cycle) if t is not None]


def _column_plans(table: sa.Table, nulls: NullPolicy | None = None) -> list[_ColumnPlan]:
    """Columns we generate values for: everything except what the database must generate itself."""
    unique_columns = {c for cols in _unique_sets(table) for c in cols}
    choices = _check_choices(table)
    plans = []
    for position, col in enumerate(table.columns):
        if _database_generated(table, col):
            continue
        enum_labels = tuple(getattr(col.type, "enums", None) or ())
        plans.append(_ColumnPlan(
            column=col, position=position, unique=col.name in unique_columns,
            choices=choices.get(col.name, enum_labels),
            # Unique columns never fall back to the default: a constant default would duplicate.
            omit_sometimes=col.server_default is not None and col.name not in unique_columns,
            may_be_null=bool(col.nullable) and (nulls is None or nulls(table.name, col.name))))
    return plans


def _database_generated(table: sa.Table, col: sa.Column[Any]) -> bool:
    """Autoincrement keys, serial/identity/AUTO_INCREMENT columns and computed columns: supplying a value would
    either be refused or desynchronise the sequence, so a later insert by a migration would collide."""
    if col.autoincrement is True or identity_of(col) is not None or col.computed is not None:
        return True
    return col is autoincrement_column(table) and _implicit_rowid(col)


def _implicit_rowid(col: sa.Column[Any]) -> bool:
    """Dialect quirk. PostgreSQL and MySQL reflect an explicit autoincrement flag; SQLite reflects none
    (``"auto"``), and there only a key declared exactly INTEGER aliases the rowid and numbers itself: a BIGINT
    PRIMARY KEY does not, so SQLAlchemy's ``autoincrement_column`` guess would leave it NULL."""
    return col.autoincrement != "auto" or type(col.type) is sa.INTEGER


def _omitted(plan: _ColumnPlan, row_index: int) -> bool:
    """Leave server-defaulted columns out of every other row. Omitting exercises the default expression itself
    (one that references a dropped sequence/function, or no longer fits an altered type, fails here); supplying a
    value gives the column data that differs from the default, which is what a type change must convert."""
    return plan.omit_sometimes and row_index % 2 == 0


def _unique_sets(table: sa.Table) -> list[tuple[str, ...]]:
    """Column-name tuples that must stay distinct: PK (minus DB-generated columns), unique constraints, unique
    indexes (plain columns only; expression indexes are covered because unique columns get injective values)."""
    sets = []
    pk = tuple(c.name for c in table.primary_key.columns if not _database_generated(table, c))
    if pk:
        sets.append(pk)
    for con in table.constraints:
        if isinstance(con, sa.UniqueConstraint) and not isinstance(con, sa.PrimaryKeyConstraint):
            sets.append(tuple(c.name for c in con.columns))
    sets.extend(tuple(c.name for c in ix.columns) for ix in table.indexes if ix.unique)
    return list(dict.fromkeys(s for s in sets if s))


def _foreign_keys(table: sa.Table) -> list[_ForeignKey]:
    out, taken = [], set()
    for fkc in sorted(table.foreign_key_constraints, key=lambda c: [e.parent.name for e in c.elements]):
        local = tuple(e.parent.name for e in fkc.elements)
        if taken & set(local):
            continue  # overlapping composite FKs: the first one wins, the other may fail and be reported
        taken.update(local)
        out.append(_ForeignKey(
            columns=local, referred=tuple(e.column for e in fkc.elements),
            nullable=all(e.parent.nullable for e in fkc.elements),
            position=min(table.columns.keys().index(c) for c in local),
            self_reference=fkc.referred_table is table))
    return out


def _existing_rows(conn: Connection, referred: tuple[sa.Column[Any], ...]) -> list[tuple[Any, ...]]:
    stmt = select(*referred).where(sa.and_(*(c.isnot(None) for c in referred))).order_by(*referred).limit(1000)
    return [tuple(r) for r in conn.execute(stmt)]


def _foreign_values(fk: _ForeignKey, rows: list[tuple[Any, ...]], row: dict[str, Any], k: int) -> dict[str, Any]:
    """A whole existing referenced row (composite FKs stay consistent), spread over ``k`` so composite keys made
    of FKs get distinct combinations. NULL only when there is no parent to point at yet: rows of real apps point
    at their parents, and a data migration that follows the reference (``row.domain.name.lower()``) must not
    fail on a shape the harness made up."""
    if rows:
        return dict(zip(fk.columns, rows[(k + fk.position) % len(rows)]))
    if fk.nullable:
        return dict.fromkeys(fk.columns)
    own = tuple(row.get(c.name) for c in fk.referred)
    if fk.self_reference and None not in own:
        return dict(zip(fk.columns, own))  # NOT NULL self-reference on an empty table: the row points at itself
    raise _Unfillable(f"NOT NULL foreign key {', '.join(fk.columns)} but "
                      f"{fk.referred[0].table.name} has no rows to point at")


def _remember_self_reference(table: sa.Table, fks: list[_ForeignKey], parents: list[list[tuple[Any, ...]]],
                             row: dict[str, Any], inserted_pk: Any) -> None:
    """Make the row just inserted a candidate parent for the next rows of the same table."""
    known = dict(row)
    known.update({c.name: v for c, v in zip(table.primary_key.columns, inserted_pk or ()) if v is not None})
    for fk, rows in zip(fks, parents):
        values = tuple(known.get(c.name) for c in fk.referred)
        if fk.self_reference and None not in values:
            rows.append(values)


# ------------------------------------------------------------------------------------------------------ values

def _null_row(position: int, done: int, wanted: int, seed: int) -> bool:
    """Exactly one row per call (when it inserts at least two) is NULL for each nullable column, on a row that
    depends on the column's position: real tables have NULLs, and a migration that makes a column NOT NULL
    without backfilling must fail here rather than in production."""
    return wanted >= 2 and done == (position + seed) % wanted


def _planned_value(plan: _ColumnPlan, k: int, done: int, wanted: int, seed: int, rng: random.Random,
                   salt: int, alternate: bool) -> Any:
    if plan.may_be_null and _null_row(plan.position, done, wanted, seed):
        return None
    if plan.choices:
        return plan.choices[k % len(plan.choices)] if plan.unique else rng.choice(plan.choices)
    return _value(plan.column.type, plan.position, k, rng, salt, unique=plan.unique, alternate=alternate)


# ---------------------------------------------------------------------------------------------------- helpers

_IN_LIST = re.compile(r"(?<!NOT)\s+IN\s*\((?P<inl>[^()]*)\)|=\s*ANY\s*\(+\s*ARRAY\s*\[(?P<arr>[^\]]*)\]", re.I)
_LITERAL = re.compile(r"'((?:[^']|'')*)'|(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.])")


def _check_choices(table: sa.Table) -> dict[str, tuple[Any, ...]]:
    """Allowed values from CHECKs of the form ``col IN (...)`` (or PostgreSQL's ``col = ANY (ARRAY[...])``):
    non-native Enum and pre-1.4 Boolean/Enum columns carry them, and random values would never satisfy them."""
    out: dict[str, tuple[Any, ...]] = {}
    for con in table.constraints:
        if not isinstance(con, sa.CheckConstraint):
            continue
        text = str(con.sqltext)
        match = _IN_LIST.search(text)
        bare = re.sub(r"'(?:[^']|'')*'", "''", text)  # column names inside literals do not count
        mentioned = [c.name for c in table.columns
                     if re.search(rf"(?<![\w$]){re.escape(c.name)}(?![\w$])", bare, re.I)]
        if match and len(mentioned) == 1:
            items = match.group("inl") or match.group("arr") or ""
            items = re.sub(r"::[\w ]+", "", items)  # PostgreSQL casts: 'a'::character varying
            values = tuple(s.replace("''", "'") if n == "" else _literal_number(n) for s, n in _LITERAL.findall(items))
            if values:
                out[mentioned[0]] = values
    return out


def _literal_number(text: str) -> int | Decimal:
    return Decimal(text) if "." in text else int(text)


def _key(values: Iterable[Any]) -> tuple[Any, ...]:
    """Normalise stored and generated values alike so "already there" is detected the way the database sees it
    (case/pad-insensitive strings, aware datetimes in UTC, memoryview bytes, 1 == 1.0 == Decimal('1.00'))."""
    out = []
    for v in values:
        if isinstance(v, str):
            v = v.rstrip().lower()
        elif isinstance(v, dt.datetime) and v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        elif isinstance(v, (memoryview, bytearray)):
            v = bytes(v)
        elif isinstance(v, uuid.UUID):
            v = v.hex
        elif isinstance(v, (float, Decimal)) and not isinstance(v, bool):
            v = Decimal(str(v)).normalize()
        out.append(v)
    return tuple(out)


def _first_line(exc: BaseException) -> str:
    """The database's own message, first line only (SQLAlchemy appends the statement and a link)."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (errno, message)
        return f"{args[1]} ({args[0]})".splitlines()[0]
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0]


@contextmanager
def _quiet() -> Iterator[None]:
    """Reflection warns about what it cannot represent (expression indexes, unknown types, FK cycles); the
    generator copes with each, and the harness's own schema checks are where such things get reported."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        yield
