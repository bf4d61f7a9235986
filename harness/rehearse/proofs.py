"""Proofs: can each pending step fail on the rows production holds? Asked of production itself, read-only.

A rehearsal on a copy proves a step only for the rows the copy holds: with the default ``--sample-rows 0`` none.
So each operation a step ran on the copy (recorded by :mod:`harness.rehearse.record`) whose success depends on
existing rows becomes a read-only question for production, an aggregate whose answer decides it:

==================================  ========================================================================
a column becomes NOT NULL           rows where it is NULL; for a new column without a server default, rows
a unique constraint / index / PK    duplicate groups over its columns (NULLs never collide, unless NULLS NOT
                                    DISTINCT)
a shorter length, smaller integer   values that do not fit
or precision
an enum losing labels               rows holding a label that is gone
a type change with a cast           values that do not convert (a regular expression, or the cast tried in a
                                    SELECT where the database raises on a bad value)
a new foreign key                   orphan rows
a new CHECK                         rows that violate it
a data migration, SQL the harness   rows of the tables it reads or writes: none, or every one of them was in
cannot analyse, a bulk insert       the rehearsal, or the step is *unproved*
==================================  ========================================================================

Columns and tables are followed through the pending steps: a column an earlier pending step added holds its
server default (or NULL) in every existing row until a data migration writes the table; a renamed column is asked
under production's name; a table a pending step created is empty. What cannot be followed is ``unproved``, with
the reason, never passed.

Dialect facts (MySQL fills an implicit default, SQLite enforces no length and checks no old row against a new
foreign key, PostgreSQL raises on a bad cast) come from the backend (:class:`~harness.backends.base.Backend`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Tuple

import sqlalchemy as sa

from ..backends.base import Backend

FAILS, PASSES, UNPROVED = "fails", "passes", "unproved"
#: a step's summary: no proof needed, every proof passes, one fails, none fails but one is unproved
NONE, PROVED = "none", "proved"

_DATA_DDL = re.compile(r"\b(UNIQUE|PRIMARY\s+KEY|FOREIGN\s+KEY|REFERENCES|CHECK|NOT\s+NULL|TYPE|MODIFY|CHANGE|"
                       r"VALIDATE|USING)\b", re.IGNORECASE)
_NEW_OBJECT = re.compile(r"^\s*(CREATE\s+(TABLE|TYPE|SEQUENCE|VIEW|FUNCTION|TRIGGER|EXTENSION|SCHEMA|"
                         r"(OR\s+REPLACE\s+)?(VIEW|FUNCTION)|INDEX)|DROP|COMMENT|GRANT|REVOKE|ALTER\s+TYPE\s+\S+\s+"
                         r"((ADD|RENAME)\s+VALUE|RENAME\s+TO|OWNER\s+TO)|ALTER\s+SEQUENCE|ALTER\s+INDEX)\b", re.IGNORECASE)
_INT_RANGE = {8: (-128, 127), 16: (-32768, 32767), 24: (-8388608, 8388607), 32: (-2147483648, 2147483647),
              64: (-9223372036854775808, 9223372036854775807)}
_INTEGER_TEXT = r"^[[:space:]]*[-+]?[0-9]+[[:space:]]*$"
_DECIMAL_TEXT = r"^[[:space:]]*[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?[[:space:]]*$"


@dataclass(frozen=True)
class Proof:
    """One question asked of production about one operation of a step, and what its answer decides."""

    kind: str            #: not-null, unique, length, range, precision, enum, cast, foreign-key, check, data
    question: str        #: what the query counts, in words
    count: int | None    #: its answer (None: decided without a count, or the query could not be answered)
    decides: str         #: fails, passes, unproved
    text: str            #: the decision in a sentence
    table: str | None = None
    sql: str | None = None  #: the read-only query sent to production (None: decided without one)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "question": self.question, "count": self.count, "decides": self.decides,
                "text": self.text, "table": self.table, "sql": self.sql}


#: evaluated at run time, so no ``X | None`` here (Python 3.9)
Decide = Callable[[Optional[int], Optional[str]], Tuple[str, str]]


@dataclass
class Question:
    """A proof still to be answered: ``query`` runs on production (None: ``decide`` needs no count)."""

    kind: str
    question: str
    table: str | None
    query: Any
    decide: Decide
    #: the query selects several counts: ``decide`` gets them all (a tuple) instead of the first
    counts: bool = False
    #: earlier data migrations' reads of rows: unless each of those is proved, what they wrote is not known, and
    #: neither is this question's answer
    after: tuple["Question", ...] = ()
    #: the step that asks it (``revision (message)``)
    origin: str = ""


def summary(proofs: Sequence[Proof]) -> str:
    """A step's proof status: ``none`` (nothing depends on existing rows), ``proved``, ``fails``, ``unproved``."""
    if not proofs:
        return NONE
    if any(p.decides == FAILS for p in proofs):
        return FAILS
    if any(p.decides == UNPROVED for p in proofs):
        return UNPROVED
    return PROVED


# -- following names through the pending steps ----------------------------------------------------------------
@dataclass
class _Fill:
    """What every existing row holds in a column a pending step added (until a data migration writes it)."""

    value: str | None     #: SQL text of the value, None for NULL
    why: str              #: "its server default 'x'", "NULL", "the type's implicit default"


@dataclass
class _State:
    """Production's tables as the pending steps change them: current name → production name, new tables, added
    columns and what they hold, tables a data migration wrote."""

    metadata: sa.MetaData
    tables: dict[str, str | None] = field(default_factory=dict)   #: current name → production name (None: new)
    columns: dict[tuple[str, str], str | _Fill | None] = field(default_factory=dict)  #: None: unknown values
    written: set[str] = field(default_factory=set)     #: tables whose rows a data migration added or removed
    changed: set[tuple[str, str]] = field(default_factory=set)  #: columns an UPDATE of a pending step set

    def __post_init__(self) -> None:
        for name in self.metadata.tables:
            self.tables[name] = name

    def production_table(self, name: str) -> sa.Table | None:
        real = self.tables.get(name, name if name in self.metadata.tables else None)
        return self.metadata.tables.get(real) if real else None

    def is_new(self, name: str) -> bool:
        return name in self.tables and self.tables[name] is None

    def column(self, table: str, name: str) -> sa.Column | _Fill | None:
        """Production's column behind ``table.name`` now, or what a pending step filled it with; None when its
        values cannot be known from production (a data migration wrote the table, or it is not there)."""
        key = (table, name)
        if key in self.changed:
            return None
        if key in self.columns:
            source = self.columns[key]
            if isinstance(source, _Fill):
                return None if table in self.written else source
            if source is None:
                return None
            name = source
        if table in self.written:
            return None
        real = self.production_table(table)
        return real.c[name] if real is not None and name in real.c else None


# -- deriving the questions -----------------------------------------------------------------------------------
class _Deriver:
    def __init__(self, metadata: sa.MetaData, backend: Backend, dialect: str, copied: dict[str, int]) -> None:
        self.state = _State(metadata)
        self.backend = backend
        self.dialect = dialect
        self.copied = copied
        self.questions: list[Question] = []
        #: the coverage questions of data migrations that read rows: code that reads rows may write anything after
        #: (on a copy without those rows it wrote nothing), so every later answer depends on them being proved
        self.taints: list[Question] = []
        self.origin = ""
        self.seen: set[tuple[str, str, str]] = set()

    # helpers
    def ask(self, kind: str, question: str, table: str | None, query: Any, decide: Decide) -> None:
        self.questions.append(Question(kind, question, table, query, decide, after=tuple(self.taints),
                                       origin=self.origin))

    def decided(self, kind: str, question: str, table: str | None, text: str) -> None:
        """A proof that needs no query (what every existing row holds follows from the pending steps themselves);
        it still depends on the earlier data migrations' reads, as every proof does."""
        self.ask(kind, question, table, None, lambda c, e: (PASSES, text))

    def untouched_new(self, table: str) -> bool:
        """Whether ``table`` was created by a pending step and no data migration can have written it: empty, no
        question to ask. After an earlier data migration read rows, it may have filled it: then the emptiness is
        a (dependent) proof of its own."""
        if not self.state.is_new(table) or table in self.state.written:
            return False
        if self.taints:
            self.decided("data", f"rows of {table}", table, f"{table} is created by a pending step")
        return True

    def count_rows(self, table: sa.Table) -> Any:
        return sa.select(sa.func.count()).select_from(table)

    def where_count(self, table: sa.Table, *conditions: Any) -> Any:
        return sa.select(sa.func.count()).select_from(table).where(*conditions)

    def rows_must_be_covered(self, kind: str, table: str, why: str) -> None:
        """A step whose outcome depends on ``table``'s rows in a way no aggregate decides: proved when production
        holds none, or when the rehearsal ran it on every one of them; else unproved."""
        if self.untouched_new(table):
            return  # created by a pending step and written by none: empty when this step runs
        real = self.state.production_table(table)
        if real is None:
            self.ask(kind, f"rows of {table}", table, None, lambda c, e: (
                UNPROVED, f"{why}; {table} is not in production's schema, so its rows cannot be counted there"))
            return
        copied = self.copied.get(real.name, 0)

        def decide(count: int | None, error: str | None) -> tuple[str, str]:
            if count is None:
                return UNPROVED, f"{why}; counting {real.name}'s rows failed: {error}"
            if count == 0:
                return PASSES, f"{why}; {real.name} holds no rows in production"
            if copied >= count:
                return PASSES, (f"{why}; the rehearsal ran it on all {count:,} row(s) of {real.name} (copied "
                                f"{copied:,})")
            return UNPROVED, (f"{why}; production holds {count:,} row(s) of {real.name} and the rehearsal held "
                              f"{copied:,} of them: pass --sample-rows {count} (or more) to rehearse it on every row")

        self.ask(kind, f"rows of {real.name}", real.name, self.count_rows(real), decide)

    # operations
    def add_column(self, fact: dict[str, Any]) -> None:
        table, column = fact["table"], fact["column"]
        default = fact.get("server_default")
        family = (fact.get("type") or {}).get("family")
        fill: _Fill | None
        if default is not None:
            fill = _Fill(default, f"its server default {default}")
        elif not fact["nullable"] and self.backend.fills_implicit_default:
            implicit = {"string": "''", "enum": None, "integer": "0", "numeric": "0", "float": "0", "boolean": "0"}
            value = implicit.get(family or "")  # an enum's first label, a zero date...: not followed
            fill = _Fill(value, f"the type's implicit default ({value})") if value else None
        else:
            fill = _Fill(None, "NULL")
        new_table = self.untouched_new(table)
        self.state.columns[(table, column)] = fill
        if new_table:
            return
        real = self.state.production_table(table)
        if real is None:
            self.rows_must_be_covered("not-null", table, f"adds {table}.{column}")
            return
        where = f"{real.name}.{column}"
        if not fact["nullable"] and default is None:
            if self.backend.fills_implicit_default:
                self.ask("not-null", f"rows of {real.name} that get {column}'s implicit default", real.name,
                         self.count_rows(real), lambda c, e: (PASSES, (
                             f"the database fills {fill.why if fill else 'the type' + chr(39) + 's implicit default'} "
                             f"into {c:,} existing row(s) of "
                             f"{real.name} for the new NOT NULL column {column}: the step passes (make sure that "
                             "value is what you want)") if c is not None else (UNPROVED, f"counting failed: {e}")))
            else:
                self.ask("not-null", f"rows of {real.name} (each would get NULL in the new NOT NULL {where})",
                         real.name, self.count_rows(real), _fails_if_any(
                             lambda c: f"{c:,} row(s) of {real.name} would get NULL in {where}, added NOT NULL "
                                       "without a server default: the step fails",
                             f"{real.name} holds no rows: the new NOT NULL {where} needs no value"))
        if fact.get("unique") or fact.get("primary_key"):
            self._unique_over(table, [column], False, fact.get("primary_key", False), f"{where} (unique)")
        for fk in fact.get("foreign_keys", ()):
            self.foreign_key({"table": table, "columns": fk["columns"], "referent": fk["referent"],
                              "referent_columns": fk["referent_columns"], "not_valid": False})
        for condition in fact.get("checks", ()):
            self.check({"table": table, "condition": condition, "not_valid": False})

    def alter_column(self, fact: dict[str, Any]) -> None:
        table, name = fact["table"], fact["column"]
        if self.untouched_new(table):
            self._rename(table, name, fact.get("new_name"))
            return
        source = self.state.column(table, name)
        real = self.state.production_table(table)
        label = f"{table}.{name}"
        if fact.get("nullable") is False:
            if isinstance(source, sa.Column) and real is not None:
                if source.nullable:
                    self.ask("not-null", f"rows of {real.name} where {source.name} is NULL", real.name,
                             self.where_count(real, source.is_(None)), _fails_if_any(
                                 lambda c: f"{c:,} row(s) of {real.name} have {source.name} NULL: making it NOT "
                                           "NULL fails",
                                 f"no row of {real.name} has {source.name} NULL"))
            elif isinstance(source, _Fill) and real is not None:
                if source.value is not None:
                    self.decided("not-null", f"rows of {real.name}", real.name, f"every existing row of {real.name} "
                                 f"holds {source.why} in {name}")
                else:
                    self.ask("not-null", f"rows of {real.name} (each holds NULL in {name}, added by a pending step)",
                             real.name, self.count_rows(real), _fails_if_any(
                                 lambda c: f"{c:,} row(s) of {real.name} hold NULL in {name} (a pending step added "
                                           "it without a value for them): making it NOT NULL fails",
                                 f"{real.name} holds no rows"))
            else:
                self.rows_must_be_covered("not-null", table, f"makes {label} NOT NULL (its values come from a "
                                                              "pending data migration)")
        if fact.get("type"):
            self._type_change(table, name, source, real, fact)
        self._rename(table, name, fact.get("new_name"))

    def _rename(self, table: str, name: str, new_name: str | None) -> None:
        if not new_name or new_name == name:
            return
        key = (table, name)
        source = self.state.columns.pop(key, name)
        self.state.columns[(table, new_name)] = source

    def _type_change(self, table: str, name: str, source: Any, real: sa.Table | None, fact: dict[str, Any]) -> None:
        new: dict[str, Any] = fact["type"]
        label = f"{table}.{name}"
        if isinstance(source, _Fill):
            if real is not None and source.value is not None:
                self.rows_must_be_covered("cast", table, f"changes the type of {label} (holding {source.why})")
            return
        if not isinstance(source, sa.Column) or real is None:
            self.rows_must_be_covered("cast", table, f"changes the type of {label}")
            return
        from .record import type_info

        old = type_info(source.type, _dialect_for(self.dialect)) or {"family": "other"}
        column, where = source, f"{real.name}.{source.name}"
        new_sql = new.get("sql", "?")
        limits = self.backend.enforces_type_limits
        if new["family"] == "enum":
            labels = new.get("labels") or []
            if not (new.get("native") and self.dialect != "sqlite") and not new.get("constraint"):
                return  # a VARCHAR without a CHECK: any label is stored, none refused
            self.ask("enum", f"rows of {real.name} whose {source.name} is not one of {', '.join(labels)}", real.name,
                     self.where_count(real, column.isnot(None), sa.cast(column, sa.String).notin_(labels)),
                     _fails_if_any(lambda c: f"{c:,} row(s) of {real.name} hold a {source.name} that {new_sql} no "
                                             "longer has: the step fails",
                                   f"every {source.name} of {real.name} is one of the new labels"))
            return
        if fact.get("using"):
            using = fact["using"]
            if not self.backend.cast_raises:
                self.rows_must_be_covered("cast", table, f"converts {label} with USING")
            elif new["family"] == "string" and new.get("length") is not None:
                # an explicit CAST to VARCHAR(n) would truncate; the ALTER refuses: count what is too long
                length = new["length"]
                self.ask("length", f"rows of {real.name} whose USING {using} is longer than {length}", real.name,
                         self.where_count(real, sa.func.char_length(sa.literal_column(f"({using})")) > length),
                         _fails_if_any(lambda c: f"{c:,} row(s) of {real.name} give a USING {using} longer than "
                                                 f"{length}: {new_sql} fails", f"every USING {using} fits {new_sql}"))
            else:
                self.ask("cast", f"rows of {real.name} whose USING {using} does not convert to {new_sql}", real.name,
                         sa.select(sa.func.count(sa.literal_column(f"CAST(({using}) AS {new_sql})")))
                         .select_from(real),
                         _raises_fails(f"{where} USING {using} fails on at least one row of production",
                                       f"USING {using} converts every row of {real.name}"))
            return
        ask = self.ask if limits else self._unenforced
        family = new["family"]
        if family == "string" and new.get("length") is not None:
            length = new["length"]
            if old["family"] == "string" and old.get("length") is not None and old["length"] <= length:
                return
            # a number or a date converts to its text: its length is what the new VARCHAR must hold
            text = column if old["family"] in ("string", "enum") else sa.cast(column, sa.String)
            ask("length", f"values of {where} longer than {length} characters", real.name,
                self.where_count(real, sa.func.char_length(text) > length),
                _fails_if_any(lambda c: f"{c:,} value(s) of {where} are longer than {length}: {new_sql} fails",
                              f"every {where} fits in {length} characters"))
        elif family == "string" or family == "float" and old["family"] in ("integer", "numeric", "float"):
            return  # unbounded text holds any value's text; a float holds any number (with rounding)
        elif family == "integer" and old["family"] in ("integer", "numeric", "float"):
            low, high = _INT_RANGE[new.get("bits", 32)]
            if old["family"] == "integer" and old.get("bits", 32) <= new.get("bits", 32):
                return
            ask("range", f"values of {where} outside {low}..{high}", real.name,
                self.where_count(real, sa.or_(column < low, column > high)),
                _fails_if_any(lambda c: f"{c:,} value(s) of {where} are outside the range of {new_sql}: the "
                                        "step fails", f"every {where} fits in {new_sql}"))
        elif family == "numeric" and old["family"] in ("integer", "numeric", "float"):
            precision, scale = new.get("precision"), new.get("scale") or 0
            if precision is None:
                return
            digits = precision - scale
            if old["family"] == "numeric" and old.get("precision") is not None and \
                    old["precision"] - (old.get("scale") or 0) <= digits:
                return
            ask("precision", f"values of {where} with more than {digits} digit(s) before the point", real.name,
                self.where_count(real, sa.func.abs(column) >= 10 ** digits),
                _fails_if_any(lambda c: f"{c:,} value(s) of {where} do not fit {new_sql}: the step fails",
                              f"every {where} fits {new_sql}"))
        elif family in ("integer", "numeric", "float") and old["family"] in ("string", "other") \
                and (self.backend.not_matching(column, _INTEGER_TEXT) is not None or not limits):
            pattern = _INTEGER_TEXT if family == "integer" else _DECIMAL_TEXT
            mismatch = self.backend.not_matching(column, pattern)
            ask("cast", f"values of {where} that are not {'integers' if family == 'integer' else 'numbers'}",
                real.name, self.where_count(real, column.isnot(None), mismatch) if mismatch is not None else None,
                _fails_if_any(lambda c: f"{c:,} value(s) of {where} do not convert to {new_sql}: the step fails",
                              f"every {where} converts to {new_sql}"))
        elif family == old["family"] and family in ("date", "datetime", "time", "boolean"):
            return  # the same kind of value (a time zone, a precision of seconds): nothing to refuse
        elif not limits:
            ask("cast", f"rows of {real.name} whose {source.name} does not convert to {new_sql}", real.name, None,
                _fails_if_any(str, ""))
        elif self.backend.cast_raises:  # any other conversion: tried in a SELECT where the database can
            quoted = _dialect_for(self.dialect).identifier_preparer.quote(source.name)
            self.ask("cast", f"rows of {real.name} whose {source.name} does not convert to {new_sql}", real.name,
                     sa.select(sa.func.count(sa.literal_column(f"CAST({quoted} AS {new_sql})"))).select_from(real),
                     _raises_fails(f"at least one {where} does not convert to {new_sql}",
                                   f"every {where} converts to {new_sql}"))
        else:
            self.rows_must_be_covered("cast", table, f"converts {label} to {new_sql}")

    def _unenforced(self, kind: str, question: str, table: str | None, query: Any, decide: Decide) -> None:
        """A type change on a dialect that keeps any value in any column (SQLite): decided without a query."""
        self.ask(kind, question, table, None, lambda c, e: (
            PASSES, f"{self.dialect} keeps any value in any column (no length, range or type is enforced): the "
                    "change cannot fail on a stored value"))

    def unique(self, fact: dict[str, Any]) -> None:
        table = fact["table"]
        if self.untouched_new(table):
            return
        if fact.get("expressions"):
            self.rows_must_be_covered("unique", table, f"adds a unique index on expressions of {table}")
            return
        what = f"{'primary key' if fact.get('primary_key') else 'unique'} ({', '.join(fact['columns'])}) on {table}"
        self._unique_over(table, list(fact["columns"]), bool(fact.get("nulls_not_distinct")),
                          bool(fact.get("primary_key")), what)

    def _unique_over(self, table: str, names: list[str], nulls_collide: bool, primary: bool, what: str) -> None:
        real = self.state.production_table(table)
        sources = [self.state.column(table, n) for n in names]
        if real is None or any(s is None for s in sources):
            self.rows_must_be_covered("unique", table, f"adds {what} over values that come from a pending data "
                                                       "migration")
            return
        varying = [s for s in sources if isinstance(s, sa.Column)]
        fills = [s for s in sources if isinstance(s, _Fill)]
        if primary:
            for column in varying:
                self.ask("not-null", f"rows of {real.name} where {column.name} is NULL (a primary key column)",
                         real.name, self.where_count(real, column.is_(None)), _fails_if_any(
                             lambda c, n=column.name: f"{c:,} row(s) of {real.name} have {n} NULL: the primary key "
                                                      "fails", f"no row of {real.name} has a NULL key"))
        if any(f.value is None for f in fills) and not nulls_collide:  # NULLs never collide
            empty = next(n for n, s in zip(names, sources) if isinstance(s, _Fill) and s.value is None)
            self.decided("unique", f"{what}: existing rows", real.name, (
                f"every existing row of {real.name} holds NULL in {empty} (a pending step added it without a "
                f"server default), and NULLs never collide: {what} passes"))
            return
        if not varying:
            self.ask("unique", f"rows of {real.name} (all get the same value)", real.name, self.count_rows(real),
                     _fails_if(lambda c: c > 1, lambda c: f"all {c:,} rows of {real.name} get the same value "
                               f"({fills[0].why}): {what} fails", f"{real.name} holds at most one row"))
            return
        keyed = sa.select(*varying).select_from(real)
        if not nulls_collide:
            keyed = keyed.where(*(c.isnot(None) for c in varying))
        groups = keyed.group_by(*varying).having(sa.func.count() > 1).subquery("duplicates")
        columns = ", ".join(c.name for c in varying)
        self.ask("unique", f"groups of rows of {real.name} sharing ({columns})"
                 + ("" if nulls_collide else ", NULLs left out as the database leaves them out"), real.name,
                 sa.select(sa.func.count()).select_from(groups),
                 _fails_if_any(lambda c: f"{c:,} value(s) of ({columns}) occur more than once in {real.name}: "
                                         f"{what} fails", f"no two rows of {real.name} share ({columns})"))

    def foreign_key(self, fact: dict[str, Any]) -> None:
        table, referent = fact["table"], fact["referent"]
        if self.untouched_new(table):
            return
        what = f"the foreign key {table}({', '.join(fact['columns'])}) → {referent}"
        if fact.get("not_valid"):
            self.ask("foreign-key", f"{what}: NOT VALID", table, None, lambda c, e: (
                PASSES, f"{what} is added NOT VALID: existing rows are not checked (VALIDATE CONSTRAINT later does)"))
            return
        if not self.backend.checks_existing_foreign_keys:
            self.ask("foreign-key", f"{what}: existing rows", table, None, lambda c, e: (
                PASSES, f"{self.dialect} does not check existing rows against a new foreign key"))
            return
        real = self.state.production_table(table)
        sources = [self.state.column(table, n) for n in fact["columns"]]
        if real is None or any(not isinstance(s, (sa.Column, _Fill)) for s in sources):
            self.rows_must_be_covered("foreign-key", table, f"adds {what} over values a pending step wrote")
            return
        if any(isinstance(s, _Fill) and s.value is None for s in sources):
            empty = next(n for n, s in zip(fact["columns"], sources) if isinstance(s, _Fill) and s.value is None)
            self.decided("foreign-key", f"{what}: existing rows", real.name, (
                f"every existing row of {real.name} holds NULL in {empty} (a pending step added it without a server "
                f"default), and a NULL key is never an orphan: {what} passes"))
            return
        if any(isinstance(s, _Fill) for s in sources):
            self.rows_must_be_covered("foreign-key", table, f"adds {what} over a column filled with a default")
            return
        children = [s for s in sources if isinstance(s, sa.Column)]
        parent_new = self.state.is_new(referent) and referent not in self.state.written
        parent = None if parent_new else self.state.production_table(referent)
        parent_columns = [self.state.column(referent, n) for n in fact["referent_columns"]] if parent is not None else []
        not_null = [c.isnot(None) for c in children]
        if parent_new:
            query = self.where_count(real, *not_null)
        elif parent is None or any(not isinstance(p, sa.Column) for p in parent_columns):
            self.rows_must_be_covered("foreign-key", table, f"adds {what}, whose parent rows a pending step wrote")
            return
        else:
            other = parent.alias("parent")
            match = sa.and_(*(other.c[p.name] == c for p, c in zip(parent_columns, children)))
            query = self.where_count(real, *not_null, ~sa.exists().where(match))
        self.ask("foreign-key", f"rows of {real.name} whose ({', '.join(c.name for c in children)}) has no row in "
                 f"{referent}", real.name, query,
                 _fails_if_any(lambda c: f"{c:,} row(s) of {real.name} reference no row of {referent}: {what} fails",
                               f"every row of {real.name} has its {referent} row"))

    def check(self, fact: dict[str, Any]) -> None:
        table = fact["table"]
        if self.untouched_new(table):
            return
        condition = fact["condition"]
        if fact.get("not_valid"):
            self.ask("check", f"CHECK ({condition}) NOT VALID", table, None, lambda c, e: (
                PASSES, f"CHECK ({condition}) is added NOT VALID: existing rows are not checked"))
            return
        real = self.state.production_table(table)
        asked = self._as_in_production(table, condition) if real is not None else None
        if real is None or asked is None:
            self.rows_must_be_covered("check", table, f"adds CHECK ({condition}) over values a pending step changed")
            return

        def decide(count: int | None, error: str | None) -> tuple[str, str]:
            if count is None:
                return UNPROVED, (f"CHECK ({condition}) could not be evaluated as a query on production ({error}); "
                                  f"whether {table}'s rows satisfy it is not known")
            if count:
                return FAILS, f"{count:,} row(s) of {table} violate CHECK ({condition}): the step fails"
            return PASSES, f"every row of {table} satisfies CHECK ({condition})"

        self.ask("check", f"rows of {table} that violate CHECK ({condition})", table,
                 self.where_count(real, sa.text(f"NOT ({asked})")), decide)

    def _as_in_production(self, table: str, condition: str) -> str | None:
        """``condition`` (on ``table`` as the pending steps left it) as it reads on production's table: a column a
        pending step added becomes the value every existing row holds in it, a renamed one its production name;
        None when it names a column whose values only a pending data migration knows."""
        if table in self.state.written:
            return None
        names = {c for t, c in self.state.columns if t == table} | {c for t, c in self.state.changed if t == table}
        for name in sorted(names, key=len, reverse=True):
            pattern = re.compile(rf"(?<![\w.])([\"`]?){re.escape(name)}\1(?![\w])")
            if not pattern.search(condition):
                continue
            source = self.state.column(table, name)
            if source is None:
                return None
            value = (f"({source.value})" if source.value is not None else "NULL") if isinstance(source, _Fill) \
                else _dialect_for(self.dialect).identifier_preparer.quote(source.name)
            condition = pattern.sub(lambda m: value, condition)
        return condition

    def statement(self, fact: dict[str, Any]) -> None:
        kind, text = fact["kind"], fact["statement"]
        tables = [t for t in fact.get("tables", ()) if t in self.state.tables]
        if kind == "ddl":
            if _NEW_OBJECT.match(text) or not _DATA_DDL.search(text):
                for name in fact.get("tables", ())[:1] if re.match(r"^\s*CREATE\s+TABLE", text, re.I) else ():
                    self.state.tables.setdefault(name, None)
                return
            why = f"runs SQL whose outcome depends on existing rows and that the harness does not analyse ({text})"
        elif kind == "read":
            why = f"reads rows in a data migration ({text})"
        else:
            why = f"writes rows in a data migration ({text})"
        if not tables:
            self.ask("data", text, None, None, lambda c, e: (
                UNPROVED, f"{why}; which tables it touches could not be told from the SQL"))
            return
        target = _simple_write(text) if kind == "write" else None
        if target and target[0] in tables and not self.state.is_new(target[0]) \
                and target[0] not in self.state.written and self.state.production_table(target[0]) is not None \
                and not self._reads_changed(target[0], target[1]):
            self._touched(target[0], target[1], why)
        else:
            start = len(self.questions)
            for table in tables:
                self.rows_must_be_covered("data", table, why)
            if kind == "read":
                self.taints.extend(self.questions[start:])
        if kind == "write":
            # an UPDATE changes only the columns it sets, whatever its WHERE (bound parameters, a subquery)
            updated, columns = _set_columns(text)
            if columns is not None and updated in self.state.tables:
                self.state.changed.update((updated, c) for c in columns)
            else:
                self.state.written.add(tables[0])

    def _reads_changed(self, table: str, where: str | None) -> bool:
        """Whether a WHERE reads a column an earlier UPDATE of a pending step set: production's values are then not
        the ones it will see, and counting them there would prove nothing."""
        return where is not None and any(t == table and re.search(rf"\b{re.escape(c)}\b", where)
                                         for t, c in self.state.changed)

    def _touched(self, table: str, where: str | None, why: str) -> None:
        """An ``UPDATE t ... [WHERE c]`` / ``DELETE FROM t [WHERE c]`` whose WHERE reads only ``t``'s own row: the
        rows it will touch on production, counted; none touched is proved, all of ``t`` rehearsed is proved."""
        real = self.state.production_table(table)
        assert real is not None
        copied = self.copied.get(real.name, 0)
        touched = self.count_rows(real) if where is None else self.where_count(real, sa.text(f"({where})"))
        query = sa.select(touched.scalar_subquery(), self.count_rows(real).scalar_subquery())

        def decide(counts: Any, error: str | None) -> tuple[str, str]:
            if counts is None:
                return UNPROVED, f"{why}; counting the rows it touches failed on production: {error}"
            rows, total = counts
            if rows == 0:
                return PASSES, f"{why}; it touches no row of {real.name} in production"
            if copied >= total:
                return PASSES, f"{why}; the rehearsal ran it on all {total:,} row(s) of {real.name} (copied {copied:,})"
            return UNPROVED, (f"{why}; it touches {rows:,} of production's {total:,} row(s) of {real.name} and the "
                              f"rehearsal held {copied:,} of them: pass --sample-rows {total} (or more) to "
                              "rehearse it on every row")

        self.questions.append(Question("data", f"rows of {real.name} the statement touches", real.name, query,
                                       decide, counts=True))

    def apply(self, fact: dict[str, Any]) -> None:
        op = fact["op"]
        if op == "add_column":
            self.add_column(fact)
        elif op == "alter_column":
            self.alter_column(fact)
        elif op == "unique":
            self.unique(fact)
        elif op == "foreign_key":
            self.foreign_key(fact)
        elif op == "check":
            self.check(fact)
        elif op == "sql":
            key = (self.origin, fact["kind"], fact["statement"])
            if key not in self.seen:  # a statement a step sends in a loop is asked once
                self.seen.add(key)
                self.statement(fact)
        elif op == "bulk_insert":
            self.rows_must_be_covered("data", fact["table"], f"inserts {fact['rows']} row(s) into {fact['table']}")
            self.state.written.add(fact["table"])
        elif op == "create_table":
            self.state.tables[fact["table"]] = None
        elif op == "drop_table":
            self.state.tables.pop(fact["table"], None)
        elif op == "rename_table":
            self.state.tables[fact["new_name"]] = self.state.tables.pop(fact["table"], fact["table"])
            for (table, column), source in list(self.state.columns.items()):
                if table == fact["table"]:
                    self.state.columns[(fact["new_name"], column)] = self.state.columns.pop((table, column))
            if fact["table"] in self.state.written:
                self.state.written.add(fact["new_name"])
        elif op == "drop_column":
            self.state.columns[(fact["table"], fact["column"])] = None


_DIALECTS: dict[str, Any] = {}


def _dialect_for(name: str) -> Any:
    if name not in _DIALECTS:
        from sqlalchemy.dialects import mysql, postgresql, sqlite

        _DIALECTS.update(postgresql=postgresql.dialect(), mysql=mysql.dialect(), sqlite=sqlite.dialect())
    return _DIALECTS[name]


def _fails_if_any(failing: Callable[[int], str], passing: str) -> Decide:
    return _fails_if(lambda c: c > 0, failing, passing)


def _fails_if(test: Callable[[int], bool], failing: Callable[[int], str], passing: str) -> Decide:
    def decide(count: int | None, error: str | None) -> tuple[str, str]:
        if count is None:
            return UNPROVED, f"the question could not be answered on production: {error}"
        return (FAILS, failing(count)) if test(count) else (PASSES, passing)

    return decide


def _raises_fails(failing: str, passing: str) -> Decide:
    """A conversion tried in a SELECT: a data exception (SQLSTATE class 22: invalid input, out of range) is a row
    that does not convert; any other error (a type or function a pending step creates, which production does not
    have yet) means the conversion could not be tried there."""
    def decide(count: int | None, error: str | None) -> tuple[str, str]:
        if count is not None:
            return PASSES, passing
        if error and error.startswith("[22"):
            return FAILS, f"{failing}: {error}"
        return UNPROVED, (f"the conversion could not be tried on production ({error}); whether it holds for every "
                          "row is not known")

    return decide


_UPDATE = re.compile(r"^\s*UPDATE\s+([`\"]?\w+[`\"]?)\s+SET\s+.*?(?:\s+WHERE\s+(.*))?$", re.IGNORECASE | re.DOTALL)
_DELETE = re.compile(r"^\s*DELETE\s+FROM\s+([`\"]?\w+[`\"]?)(?:\s+WHERE\s+(.*))?$", re.IGNORECASE | re.DOTALL)
_NOT_SIMPLE = re.compile(r"\bSELECT\b|\bFROM\b.*\bFROM\b|\bJOIN\b|\bRETURNING\b|\bLIMIT\b|%\(|%s|\?|(?<![:\w]):\w|\.\.\.$",
                         re.IGNORECASE | re.DOTALL)


def _simple_write(text: str) -> tuple[str, str | None] | None:
    """``(table, WHERE text or None)`` of an UPDATE / DELETE that reads nothing but its own table's row (no
    subquery, join or bound parameter): its WHERE can be counted on production as it stands."""
    if _NOT_SIMPLE.search(text):
        return None
    match = _UPDATE.match(text) or _DELETE.match(text)
    if not match:
        return None
    return match.group(1).strip('`"'), match.group(2)


def _set_columns(text: str) -> tuple[str | None, list[str] | None]:
    """The table an ``UPDATE t SET a = ..., b = ...`` writes and the columns it sets (None: not an UPDATE of one
    table, or not told apart)."""
    match = re.match(r"^\s*UPDATE\s+(\S+)\s+SET\s+(.*?)(?:\s+WHERE\s+.*)?$", text, re.IGNORECASE | re.DOTALL)
    if not match:
        return None, None
    table = match.group(1).strip('`"')
    columns, depth, quoted, part = [], 0, False, ""
    for char in match.group(2) + ",":
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        if char == "," and depth == 0 and not quoted:
            name = part.split("=", 1)[0].strip().strip('`"')
            if not re.fullmatch(r"\w+", name):
                return table, None
            columns.append(name)
            part = ""
        else:
            part += char
    return table, columns


def derive(steps: Sequence[tuple[str, Sequence[dict[str, Any]]]], metadata: sa.MetaData, backend: Backend,
           dialect: str, copied: dict[str, int], labels: dict[str, str] | None = None) -> dict[str, list[Question]]:
    """The questions of each step (``(revision, facts)`` in the order they ran), following production's tables
    through the earlier pending steps."""
    _dialect_for(dialect)
    deriver = _Deriver(metadata, backend, dialect, copied)
    questions: dict[str, list[Question]] = {}
    for revision, facts in steps:
        deriver.questions = []
        deriver.origin = (labels or {}).get(revision, revision)
        for fact in facts:
            deriver.apply(fact)
        questions[revision] = deriver.questions
    return questions


def answer(conn: sa.engine.Connection, questions: dict[str, list[Question]], savepoints: bool) -> dict[str, list[Proof]]:
    """Ask every question on ``conn`` (production, read-only, one snapshot); an identical query is sent once.
    With ``savepoints`` each query runs behind one, so that a failed one (a cast that raises) leaves the
    transaction usable."""
    cache: dict[str, tuple[tuple[int, ...] | None, str | None]] = {}
    decided: dict[int, str] = {}  #: id(question) → what it decided, for the questions that come after it
    proofs: dict[str, list[Proof]] = {}
    for revision, asked in questions.items():
        proofs[revision] = []
        for q in asked:
            sql = None
            count: int | None = None
            values: tuple[int, ...] | None = None
            error: str | None = None
            if q.query is not None:
                sql = " ".join(str(q.query.compile(conn, compile_kwargs={"literal_binds": True})).split())
                if sql not in cache:
                    cache[sql] = _count(conn, q.query, savepoints)
                values, error = cache[sql]
                count = values[0] if values else None
            decides, text = q.decide(values if q.counts and q.query is not None else count, error)
            open_taints = [t for t in q.after if decided.get(id(t), UNPROVED) != PASSES]
            if open_taints:
                taint = open_taints[0]
                decides, text = UNPROVED, (
                    f"not known: {taint.origin} read rows of {taint.table} in a data migration, and the rehearsal "
                    f"did not run it on every one of them, so what it wrote after is not known (were it not for "
                    f"that: {text})")
            decided[id(q)] = decides
            proof = Proof(q.kind, q.question, count, decides, text, q.table, sql)
            if proof not in proofs[revision]:  # a statement a step sends in a loop is one proof, not one per pass
                proofs[revision].append(proof)
    return proofs


def _count(conn: sa.engine.Connection, query: Any, savepoints: bool) -> tuple[tuple[int, ...] | None, str | None]:
    from ..backends.base import first_line

    nested = conn.begin_nested() if savepoints else None
    try:
        row = conn.execute(query).first()
    except sa.exc.DBAPIError as exc:
        if nested is not None:
            nested.rollback()
        if exc.connection_invalidated:
            raise
        code = getattr(exc.orig, "pgcode", None)  # PostgreSQL's SQLSTATE: class 22 is a data exception
        return None, (f"[{code}] " if code else "") + first_line(exc.orig or exc)
    if nested is not None:
        nested.commit()
    return tuple(int(v or 0) for v in row) if row is not None else (0,), None
