"""Reflect a database into a plain, comparable snapshot.

A snapshot holds only strings, numbers and tuples, so two can be compared with ``==`` and a difference printed
without a database at hand. ``leaves_no_trace`` compares the snapshot before the first upgrade with the one after
the last downgrade; ``stairway`` compares the schema after two upgrades to the same revision.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Snapshot:
    """Tables (name → description) and other schema objects (kind → names) of one database."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def object_names(self) -> set[tuple[str, str]]:
        """``(kind, name)`` for every table, index and non-table object: what ``leaves_no_trace`` counts."""
        names = {("table", t) for t in self.tables}
        for table, info in self.tables.items():
            names.update(("index", f"{table}.{ix['name']}") for ix in info["indexes"])
        for kind, items in self.objects.items():
            names.update((kind, n) for n in items)
        return names


def type_text(type_: Any, dialect: Any) -> str:
    """A type as the dialect spells it (``VARCHAR(80)``); a type the dialect cannot compile, by its class."""
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # e.g. String() without length cannot compile on MySQL
        return f"{type(type_).__name__}()" if not getattr(type_, "length", None) else repr(type_)


def reflect_table(inspector: sa.Inspector, table: str, dialect: Any) -> dict[str, Any]:
    """One table as plain data: columns, primary key, foreign keys, indexes, unique and CHECK constraints."""
    columns = tuple(
        (c["name"], type_text(c["type"], dialect), bool(c["nullable"]),
         None if c.get("default") is None else str(c["default"]))
        for c in inspector.get_columns(table)
    )
    pk = inspector.get_pk_constraint(table) or {}
    fks = tuple(sorted(
        (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]),
         str((fk.get("options") or {}).get("ondelete") or ""), str((fk.get("options") or {}).get("onupdate") or ""))
        for fk in inspector.get_foreign_keys(table)
    ))
    indexes = tuple(sorted(
        ({"name": ix["name"] or "", "columns": tuple(str(c) for c in ix["column_names"]),
          "unique": bool(ix["unique"])} for ix in inspector.get_indexes(table)),
        key=lambda ix: (ix["name"], ix["columns"]),
    ))
    uniques = tuple(sorted((u["name"] or "", tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)))
    try:
        checks = tuple(sorted((c["name"] or "", " ".join(str(c["sqltext"]).split()))
                              for c in inspector.get_check_constraints(table)))
    except NotImplementedError:
        checks = ()
    return {"columns": columns, "primary_key": tuple(pk.get("constrained_columns") or ()),
            "foreign_keys": fks, "indexes": indexes, "unique_constraints": uniques, "check_constraints": checks}


def snapshot(conn: Connection, backend: Any, cache: dict[str, tuple[str, dict[str, Any]]] | None = None) -> Snapshot:
    """Everything in the connection's default schema: tables via the Inspector, other objects (enum types,
    sequences, views, functions…) via the dialect backend's :meth:`schema_objects`.

    With a ``cache`` (kept by the caller between snapshots of the same database), a table whose catalogue
    fingerprint (:meth:`Backend.table_fingerprints`) is unchanged is not reflected again: the stairway takes two
    snapshots per revision, and reflecting every table each time made it quadratic in the chain's length. The
    fingerprints, the other objects and (where the dialect gives them exactly) the table names are then read
    together (:meth:`Backend.catalogue`).
    """
    inspector = sa.inspect(conn)
    catalogue = backend.catalogue(conn) if cache is not None else None
    fingerprints = catalogue.fingerprints if catalogue is not None else None
    names = catalogue.tables if catalogue is not None and catalogue.tables is not None else inspector.get_table_names()
    tables = {}
    for name in sorted(names):
        mark = fingerprints.get(name) if fingerprints is not None else None
        known = cache.get(name) if cache is not None and mark is not None else None
        if known is not None and known[0] == mark:
            tables[name] = known[1]
            continue
        tables[name] = reflect_table(inspector, name, conn.dialect)
        if cache is not None and mark is not None:
            cache[name] = (mark, tables[name])
    found = catalogue.objects if catalogue is not None else backend.schema_objects(conn)
    objects = {kind: tuple(sorted(items)) for kind, items in found.items()}
    return Snapshot(tables=tables, objects=objects)


def snapshot_differences(before: Snapshot, after: Snapshot) -> list[str]:
    """Human lines naming what differs between two snapshots of the same database (empty when equal)."""
    lines: list[str] = []
    for table in sorted(set(before.tables) | set(after.tables)):
        if table not in after.tables:
            lines.append(f"table {table} is gone")
            continue
        if table not in before.tables:
            lines.append(f"table {table} is new")
            continue
        for aspect, old in before.tables[table].items():
            new = after.tables[table][aspect]
            if old != new:
                lines.append(f"table {table}: {aspect} differ: {_show(old)} then {_show(new)}")
    for kind in sorted(set(before.objects) | set(after.objects)):
        old, new = set(before.objects.get(kind, ())), set(after.objects.get(kind, ()))
        for name in sorted(old - new):
            lines.append(f"{kind} {name} is gone")
        for name in sorted(new - old):
            lines.append(f"{kind} {name} is new")
    return lines


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."
