"""Recreate production's schema (and a sample of its rows) in a scratch database on the throwaway server.

The copy is built from the MetaData reflected from production, not from the migrations: it is what production
*is*, drift included, so the pending migrations are rehearsed on the schema they will really meet. Tables,
primary keys, foreign keys, indexes, unique and CHECK constraints, PostgreSQL enum types and server defaults
come from SQLAlchemy's ``create_all``; ``alembic_version`` holds production's revision(s).
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from ..backends.base import Backend
from .source import VERSION_TABLE, Source, insert_order


def recreate(source: Source, url: str, backend: Backend) -> dict[str, int]:
    """Build production's schema in the (empty) database at ``url``, load the sampled rows parents first, and
    stamp ``alembic_version``; return the number of rows copied per table.

    Tables that reference each other (``users.team_id`` → ``teams``, ``teams.captain_id`` → ``users``) have no
    order in which their rows can be inserted one table at a time: the foreign keys that close such a cycle are
    dropped while the rows go in and added back afterwards (which checks the sample is consistent). SQLite does not
    enforce foreign keys on this connection, so it needs neither."""
    metadata = copyable_metadata(source.metadata, backend)
    order, cycle_keys = insert_order(metadata)
    engine = sa.create_engine(url, poolclass=NullPool)
    counts: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            held_back = [fk for fk in cycle_keys if fk.name] if backend.name != "sqlite" else []
            for fk in held_back:
                conn.execute(sa.schema.DropConstraint(fk))
            for table in order:
                if table.name == VERSION_TABLE:
                    rows: list[dict[str, Any]] = [{"version_num": r} for r in source.revisions]
                else:
                    rows = source.rows.get(table.name, [])
                if rows:
                    conn.execute(table.insert(), rows)
                    if table.name != VERSION_TABLE:
                        backend.after_rows_copied(conn, table)
                        counts[table.name] = len(rows)
            for fk in held_back:
                conn.execute(sa.schema.AddConstraint(fk))
    finally:
        engine.dispose()
    return counts


def copyable_metadata(reflected: sa.MetaData, backend: Backend) -> sa.MetaData:
    """A copy of the reflected MetaData that an empty database can create: server defaults the database makes
    by itself are dropped (see :meth:`Backend.copyable_default`)."""
    metadata = sa.MetaData()
    for table in insert_order(reflected)[0]:
        table.to_metadata(metadata)
    for table in metadata.tables.values():
        for column in table.columns:
            arg = getattr(column.server_default, "arg", None)  # reflected: a DefaultClause around the SQL text
            if arg is not None and backend.copyable_default(str(getattr(arg, "text", arg))) is None:
                column.server_default = None
    return metadata
