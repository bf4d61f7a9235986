"""Exercise a release's models against whatever schema the database has now (inside a worker, in the release's
own app and interpreter): what the ORM of that release does every day, one operation at a time.

Why one operation at a time: SQLAlchemy's ORM names every mapped column in its SELECT and INSERT, so a renamed or
dropped column breaks every load of its class, not only code that reads the attribute. Operations on a single
column (``select`` of one attribute, ``update`` of one column) isolate the column that broke, so a later revision
that breaks another column of an already broken class is still seen (:mod:`harness.rolling.classify`).

Operations, each in its own transaction (a failed one never hides the next), always rolled back:

* ``load``: ``query(Model)`` (every mapped column), then each relationship from a loaded row (``relationship``);
* ``select``: ``query(Model.attr)`` for each column attribute;
* ``insert``: a ``Model()`` with only what the model requires (NOT NULL columns without a default of any kind),
  flushed: what the old code sends, and nothing it does not know about;
* ``update``: ``query(Model).filter(pk).update({attr: value})`` for each column, on a row already there, with a
  value of the model's own type;
* ``delete``: ``session.delete()`` of a row it inserts (the ORM's cascades included).

Every operation is rolled back: nothing the exercise writes stays for the next operation, class or step.

Runs on every SQLAlchemy the worker supports (1.3 to 2.x): ``Session.query`` is the API common to all of them.
"""
from __future__ import annotations

import dataclasses
import enum
import random
from dataclasses import dataclass
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy import orm

from ..versions import autoincrement_column
from ..datagen.values import _Exhausted, _value
from ..chain.steps import describe_error

#: rows loaded per class by ``load``: enough to follow each relationship from a real row
LOAD_ROWS = 5
#: row serials of the values the exercise writes: far from the generated rows' (0..rows), so unique values differ
_SERIAL = 900_000


@dataclass(frozen=True)
class Failure:
    """One operation of one release's code that the database refused."""

    release: str            # "previous" or "new"
    operation: str          # load, relationship, select, insert, update, delete, smoke
    model: str | None
    attribute: str | None
    error: str

    @property
    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.release, self.operation, self.model, self.attribute)

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "operation": self.operation, "model": self.model,
                "attribute": self.attribute, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(data["release"], data["operation"], data.get("model"), data.get("attribute"), data["error"])


def mapped_classes(db: Any) -> list[Any]:
    """Every class mapped on the app's ``db.Model`` (subclasses, recursively), in a stable order; abstract
    classes and classes on another bind (``__bind_key__``) are left out: the scratch database is the default
    bind's."""
    seen: list[Any] = []
    stack = list(db.Model.__subclasses__())
    while stack:
        cls = stack.pop(0)
        stack.extend(cls.__subclasses__())
        mapper = sa.inspect(cls, raiseerr=False)
        if mapper is None or cls in seen or getattr(cls, "__bind_key__", None):
            continue
        seen.append(cls)
    return sorted(seen, key=lambda c: (c.__module__, c.__name__))


def exercise(db: Any, engine: Any, release: str) -> tuple[list[Failure], int]:
    """Run every operation of every mapped class on ``engine``; the failures, and how many operations ran."""
    failures: list[Failure] = []
    count = 0
    for cls in mapped_classes(db):
        for failure in _exercise_class(cls, engine, release):
            count += 1
            if failure is not None:
                failures.append(failure)
    return failures, count


def _exercise_class(cls: Any, engine: Any, release: str) -> Iterator[Failure | None]:
    mapper = sa.inspect(cls)
    name = cls.__name__

    def attempt(operation: str, attribute: str | None, work: Any) -> Failure | None:
        """``work`` in a transaction that is always rolled back: the database accepted or refused the statements,
        and nothing the exercise writes stays (no later operation, class or step meets its rows)."""
        session = orm.Session(bind=engine)
        try:
            work(session)
            session.flush()
            return None
        except Exception as exc:  # noqa: BLE001 - the database's refusal is the finding
            return Failure(release, operation, name, attribute, describe_error(exc))
        finally:
            session.rollback()
            session.close()

    def load(session: Any) -> None:
        for obj in session.query(cls).limit(LOAD_ROWS).all():
            for prop in mapper.column_attrs:  # deferred columns load here
                getattr(obj, prop.key)

    yield attempt("load", None, load)
    pk_attrs = [getattr(cls, mapper.get_property_by_column(c).key) for c in mapper.primary_key]
    for rel in mapper.relationships:
        def follow(session: Any, rel: Any = rel) -> None:
            for obj in session.query(cls).options(orm.load_only(*pk_attrs)).limit(LOAD_ROWS).all():
                value = getattr(obj, rel.key)
                if value is not None and rel.uselist:
                    list(value)
        yield attempt("relationship", rel.key, follow)
    for prop in mapper.column_attrs:
        yield attempt("select", prop.key, lambda session, p=prop: session.query(getattr(cls, p.key)).limit(1).all())

    def insert(session: Any) -> Any:
        obj = cls()
        for position, column in enumerate(_table_columns(mapper)):
            if _required(column):
                setattr(obj, mapper.get_property_by_column(column).key, _value_for(session, column, position, 0))
        session.add(obj)
        session.flush()
        return obj

    failure = attempt("insert", None, insert)
    if failure is None:
        yield None
    else:
        yield from _insert_causes(failure, mapper, engine)
    try:  # updates work on a row already there (the generated rows), rolled back each time
        with engine.connect() as conn:
            session = orm.Session(bind=conn)
            row = session.query(*pk_attrs).first()
            session.close()
        target = list(row) if row is not None else None
    except Exception:  # noqa: BLE001 - ``load`` / ``select`` already say why the table cannot be read
        target = None
    where = sa.and_(*[a == v for a, v in zip(pk_attrs, target)]) if target is not None else None
    for position, prop in enumerate(mapper.column_attrs if where is not None else ()):
        columns = [c for c in prop.columns if isinstance(c, sa.Column) and c.table is not None]
        if not columns or any(c.primary_key for c in columns) or getattr(columns[0], "computed", None) is not None:
            continue
        if columns[0].table is not mapper.local_table:  # a parent's column (joined inheritance): the parent's own
            continue                                    # exercise updates it; query.update() takes one table

        def update(session: Any, prop: Any = prop, column: Any = columns[0], position: int = position) -> None:
            value = _value_for(session, column, position, 1)
            session.query(cls).filter(where).update({getattr(cls, prop.key): value}, synchronize_session=False)

        yield attempt("update", prop.key, update)

    if failure is None:
        def delete(session: Any) -> None:  # the row it inserts itself: no other row refers to it
            session.delete(insert(session))

        yield attempt("delete", None, delete)


def _insert_causes(failure: Failure, mapper: Any, engine: Any) -> list[Failure]:
    """An INSERT fails for the column it sends that the table lacks, or for the NOT NULL column without a default
    it does not send: one failure per such column (found by reflecting the table), so that each belongs to the
    revision that caused it even when another column already broke the INSERT; else the INSERT as a whole."""
    causes: list[Failure] = []
    try:
        inspector = sa.inspect(engine)
        for table in {c.table for c in _table_columns(mapper)}:
            model_columns = [c for c in _table_columns(mapper) if c.table is table]
            reflected = {c["name"]: c for c in inspector.get_columns(table.name, schema=table.schema)}
            for column in model_columns:
                if column.name not in reflected:  # the ORM names every column it maps, NULL or not
                    causes.append(dataclasses.replace(failure, attribute=column.name))
            known = {c.name for c in model_columns}
            for name, column in reflected.items():
                if (name not in known and not column.get("nullable", True) and column.get("default") is None
                        and not column.get("autoincrement") is True and not column.get("computed")):
                    causes.append(dataclasses.replace(failure, attribute=name, error=(
                        f"{table.name}.{name} is NOT NULL without a server default, and the model does not send it "
                        f"(the database's first error: {failure.error})")))
    except Exception:  # noqa: BLE001 - the table cannot be read (dropped, renamed): the INSERT as a whole
        return [failure]
    return causes or [failure]


def _table_columns(mapper: Any) -> list[sa.Column]:
    """The columns of every table the class writes (joined inheritance: the parent's too)."""
    return [c for c in mapper.columns if isinstance(c, sa.Column) and c.table is not None]


def _required(column: sa.Column) -> bool:
    """What the model cannot do without: NOT NULL, no default of any kind, not numbered by the database, not a
    key the ORM copies from a parent row (joined inheritance)."""
    if column.nullable or column.default is not None or column.server_default is not None:
        return False
    if getattr(column, "computed", None) is not None or getattr(column, "identity", None) is not None:
        return False
    if column.primary_key and (column.foreign_keys or column is autoincrement_column(column.table)):
        return False
    return True


def _value_for(session: Any, column: sa.Column, position: int, round_: int) -> Any:
    """A value the model's own type takes: an existing parent's key for a foreign key, an enum member, else the
    ``data`` check's generated value (unique, so unique constraints hold)."""
    for fk in column.foreign_keys:
        referred = fk.column
        return session.query(referred).limit(1).scalar()
    type_ = column.type
    enum_class = getattr(type_, "enum_class", None)
    if isinstance(type_, sa.Enum) and enum_class is not None and issubclass(enum_class, enum.Enum):
        return list(enum_class)[round_ % len(list(enum_class))]
    if isinstance(type_, sa.Enum) and type_.enums:
        return type_.enums[round_ % len(type_.enums)]
    rng = random.Random(f"{column.table.name}.{column.name}.{round_}")
    try:
        return _value(type_, position, _SERIAL + round_, rng, position, unique=True, alternate=False)
    except _Exhausted:
        return _value(type_, position, round_, rng, position, unique=False, alternate=False)


__all__ = ["Failure", "exercise", "mapped_classes"]
