"""Read a production database without changing it: its alembic revision(s), its schema, a sample of its rows.

Everything happens on one connection, in one transaction the database itself keeps read-only (the dialect
backend says how: :meth:`~harness.backends.base.Backend.read_only_engine` and
:meth:`~harness.backends.base.Backend.begin_read_only`), and which is rolled back at the end. As a second guard a
statement listener refuses, before it is sent, anything that is not a catalogue or row read, so a bug in the
harness cannot even try to write there. Nothing is created on the production server: no scratch database, no
temporary table, no migration.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL, make_url

from ..backends import get_backend
from ..backends.base import Backend, TableSize, first_line
from ..errors import ConfigError, DatabaseUnavailable
from ..config.redact import safe_url, secrets_of
from .proofs import Proof, Question, answer

VERSION_TABLE = "alembic_version"

#: the only statements the harness sends to production: reads of rows and catalogues, and the session settings
#: that make it read-only (PostgreSQL ``SET TRANSACTION``, MySQL ``START TRANSACTION ... READ ONLY``,
#: SQLite ``PRAGMA table_info``...)
_READS = re.compile(r"^\s*(\(\s*)?(SELECT|WITH|SHOW|DESCRIBE|EXPLAIN|PRAGMA|SET\s+(SESSION|TRANSACTION)|"
                    r"START\s+TRANSACTION|ROLLBACK|BEGIN|SAVEPOINT|RELEASE\s+SAVEPOINT)\b", re.IGNORECASE)
_WRITE_PRAGMA = re.compile(r"^\s*PRAGMA\s+\w+(\.\w+)?\s*=", re.IGNORECASE)


class WriteRefused(Exception):
    """The harness was about to send production something other than a read (a harness bug, stopped here)."""


@dataclass
class Source:
    """What was read from production, in one read-only snapshot."""

    url: str                 #: shown form (password hidden)
    dialect: str
    server_version: str
    version_info: tuple[int, ...]
    revisions: tuple[str, ...]      #: rows of alembic_version
    metadata: sa.MetaData           #: reflected tables (alembic_version included)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  #: sampled rows per table, FK-consistent
    statements: int = 0             #: statements sent to production (all reads)
    #: production's tables' row counts and sizes, from the catalogue (``alembic_version`` left out)
    sizes: dict[str, TableSize] = field(default_factory=dict)
    sizes_error: str | None = None  #: why ``sizes`` could not be read, if they could not


def locate_sqlite(raw: str, app_base: str, cwd: str) -> str:
    """``--from sqlite:///name.db`` with a relative path means what the app's own URI would: Flask-SQLAlchemy
    resolves it against ``app_base`` (the instance folder on 3.x, the app's root on 2.x). That file when it
    exists, else the path relative to ``cwd``; the URL returned names it absolutely. Other URLs are unchanged."""
    url = make_url(raw)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or Path(url.database).is_absolute():
        return raw
    for base in (app_base, cwd):
        if base and (Path(base) / url.database).is_file():
            return url.set(database=str((Path(base) / url.database).resolve())).render_as_string(hide_password=False)
    where = f"{app_base} (where the app's Flask-SQLAlchemy puts a relative SQLite path) or in " if app_base else ""
    raise ConfigError(f"--from {safe_url(url)}: no SQLite database file {url.database!r} in {where}{cwd}")


def parse_source_url(raw: str, check_file: bool = True) -> tuple[URL, str, Backend]:
    """The ``--from`` URL with the harness's driver pinned, its dialect and backend; :class:`ConfigError`
    (exit 2) for a URL that cannot be used at all (with ``check_file``, a SQLite file that does not exist)."""
    hide = secrets_of(raw)
    try:
        url = make_url(raw)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a usage error
        raise ConfigError(f"--from: cannot parse the URL: {first_line(exc, hide + [raw])}") from exc
    backend_name = url.get_backend_name()
    dialect = "mysql" if backend_name in ("mysql", "mariadb") else backend_name
    if dialect not in ("postgresql", "mysql", "sqlite"):
        raise ConfigError(f"--from {safe_url(url)}: {backend_name} is not supported (postgresql, mysql, mariadb, "
                          "sqlite)")
    backend = get_backend(dialect)
    if dialect == "sqlite":
        if not url.database or url.database == ":memory:" or check_file and not Path(url.database).is_file():
            raise ConfigError(f"--from {safe_url(url)}: no SQLite database file {url.database or ''!r}")
        return url, dialect, backend
    if not url.database:
        raise ConfigError(f"--from {safe_url(url)}: the URL names no database (add /DBNAME)")
    if "+" not in url.drivername:
        url = url.set(drivername=f"{dialect}+{backend.default_driver}")  # type: ignore[attr-defined]
    return url, dialect, backend


def _guard(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
    if not _READS.match(statement) or _WRITE_PRAGMA.match(statement):
        raise WriteRefused(f"refused to send a non-read statement to production: {statement[:120]!r}")


@dataclass
class ReadOnly:
    """One open read-only session on production (see :func:`read_only_connection`)."""

    conn: Connection
    backend: Backend
    dialect: str
    shown: str            #: the URL as shown (password hidden)
    hide: list[str]
    counter: list[int]    #: statements sent so far

    def failed(self, exc: sa.exc.DBAPIError) -> DatabaseUnavailable:
        """Production's error as exit 3: a server that went away mid-read (killed, restarted, failed over, the
        network dropped) is named as that fault, which no verdict can be drawn from."""
        words = first_line(exc.orig or exc, self.hide)
        if exc.connection_invalidated or self.backend.environment_fault(words):
            return DatabaseUnavailable(self.dialect, f"production ({self.shown}) stopped answering while it was "
                                                     f"read ({words}): no verdict; nothing was written there (every "
                                                     "read is in one read-only transaction): rehearse again once "
                                                     "it answers")
        return DatabaseUnavailable(self.dialect, f"reading {self.shown} failed: {words}")


@contextmanager
def read_only_connection(raw_url: str) -> Iterator[ReadOnly]:
    """One connection to production in one transaction the database keeps read-only, every statement through
    the read-only guard, rolled back at the end (see the module docstring); :class:`DatabaseUnavailable` (exit 3)
    when it cannot be reached, :class:`ConfigError` (exit 2) for a URL that cannot be used."""
    url, dialect, backend = parse_source_url(raw_url)
    hide = secrets_of(url, raw_url)
    shown = safe_url(url)
    try:
        engine = backend.read_only_engine(url)
    except Exception as exc:  # noqa: BLE001 - the driver is missing, an option is unknown
        raise ConfigError(f"--from {shown}: {first_line(exc, hide)}") from exc
    counter = [0]

    def count(*args: Any) -> None:
        counter[0] += 1

    sa.event.listen(engine, "before_cursor_execute", _guard)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise DatabaseUnavailable(dialect, f"cannot connect to {shown}: {first_line(exc.orig or exc, hide)}") from exc
        session = ReadOnly(conn, backend, dialect, shown, hide, counter)
        try:
            transaction = conn.begin()
            try:
                opening = backend.begin_read_only()
                if opening:
                    conn.exec_driver_sql(opening)
                yield session
            finally:
                transaction.rollback()  # nothing was written; rolling back says so to the database as well
        except sa.exc.DBAPIError as exc:
            raise session.failed(exc) from exc
        finally:
            conn.close()
    finally:
        engine.dispose()


def read_source(raw_url: str, sample_rows: int = 0) -> Source:
    """Read production at ``raw_url`` (see the module docstring); :class:`DatabaseUnavailable` (exit 3) when it
    cannot be reached, :class:`ConfigError` (exit 2) when it is not under alembic."""
    with read_only_connection(raw_url) as session:
        source = _read(session.conn, session.backend, session.dialect, session.shown, sample_rows)
        source.sizes, source.sizes_error = read_table_sizes(session)
    source.statements = session.counter[0]
    return source


def read_table_sizes(session: ReadOnly) -> tuple[dict[str, TableSize], str | None]:
    """Production's tables' row counts and sizes from its catalogue (the last read of the snapshot: should the
    dialect's catalogue query fail, nothing else is lost), or why they could not be read."""
    try:
        sizes = session.backend.table_sizes(session.conn)
    except sa.exc.DBAPIError as exc:
        return {}, f"table sizes could not be read: {first_line(exc.orig or exc, session.hide)}"
    return {name: size for name, size in sizes.items() if name != VERSION_TABLE}, None


def read_sizes(raw_url: str) -> tuple[str, str, dict[str, TableSize]]:
    """``(dialect, server version, sizes per table)`` of the database at ``raw_url``, read-only (``lint
    --sizes-from``); a failed catalogue read is a :class:`DatabaseUnavailable` here."""
    with read_only_connection(raw_url) as session:
        conn = session.conn
        if session.dialect == "sqlite":
            version = f"SQLite {conn.dialect.dbapi.sqlite_version}"  # type: ignore[union-attr]
        else:
            version = session.backend.describe_version(conn)  # type: ignore[attr-defined]
        sizes, error = read_table_sizes(session)
        if error:
            raise DatabaseUnavailable(session.dialect, f"{session.shown}: {error}")
    return session.dialect, version, sizes


def ask(raw_url: str, source: Source, questions: dict[str, list[Question]]) -> dict[str, list[Proof]]:
    """Answer the proofs' questions on production, in a read-only snapshot of their own, after checking that
    production is still at the revision(s) the rehearsal started from (:class:`ProductionMoved` if not)."""
    with read_only_connection(raw_url) as session:
        version = sa.table(VERSION_TABLE, sa.column("version_num"))
        now = tuple(sorted(str(r) for r in session.conn.execute(sa.select(version.c.version_num)).scalars()))
        if now != source.revisions:
            raise ProductionMoved(source.revisions, now)
        proofs = answer(session.conn, questions, savepoints=session.dialect != "sqlite")
    source.statements += session.counter[0]
    return proofs


class ProductionMoved(Exception):
    """Production's alembic revision changed between the first read and the proofs (someone migrated it)."""

    def __init__(self, before: tuple[str, ...], now: tuple[str, ...]) -> None:
        super().__init__(f"production moved from {', '.join(before) or 'base'} to {', '.join(now) or 'base'} "
                         "during the rehearsal (a migration ran there): rehearse again")


def _read(conn: Connection, backend: Backend, dialect: str, shown: str, sample_rows: int) -> Source:
    inspector = sa.inspect(conn)
    if dialect == "sqlite":
        server_version, version_info = f"SQLite {conn.dialect.dbapi.sqlite_version}", ()  # type: ignore[union-attr]
    else:
        server_version = backend.describe_version(conn)  # type: ignore[attr-defined]
        version_info = tuple(p for p in conn.dialect.server_version_info or () if isinstance(p, int))
    if VERSION_TABLE not in inspector.get_table_names():
        raise ConfigError(f"{shown} is not under alembic: it has no {VERSION_TABLE} table (stamp it with "
                          "`flask db stamp <revision>` first, or point --from at the right database)")
    metadata = sa.MetaData()
    metadata.reflect(bind=conn)
    _drop_implicit_checks(metadata, backend)
    version = metadata.tables[VERSION_TABLE]
    revisions = tuple(sorted(str(r) for r in conn.execute(sa.select(version.c.version_num)).scalars()))
    rows = sample(conn, metadata, sample_rows) if sample_rows > 0 else {}
    return Source(shown, dialect, server_version, version_info, revisions, metadata, rows)


def _drop_implicit_checks(metadata: sa.MetaData, backend: Backend) -> None:
    """CHECKs the database adds by itself (MariaDB's ``json_valid``) are not production's schema: recreating
    them would duplicate what the database adds again, and comparing them would report them as drift."""
    for table in metadata.tables.values():
        for constraint in list(table.constraints):
            if isinstance(constraint, sa.CheckConstraint) and backend.is_implicit_check(
                    constraint.name if isinstance(constraint.name, str) else None, str(constraint.sqltext)):
                table.constraints.discard(constraint)


def insert_order(metadata: sa.MetaData) -> tuple[list[sa.Table], list[sa.ForeignKeyConstraint]]:
    """Tables parents first, and the foreign keys left out of that order because they close a cycle (SQLAlchemy's
    own sort, as ``create_all`` uses it; without its warning for each cycle)."""
    order: list[sa.Table] = []
    cycle_keys: list[sa.ForeignKeyConstraint] = []
    for table, keys in sa.schema.sort_tables_and_constraints(list(metadata.tables.values())):
        if table is None:
            cycle_keys.extend(keys)
        else:
            order.append(table)
    return order, cycle_keys


def sample(conn: Connection, metadata: sa.MetaData, per_table: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_table`` rows of every table, parents before children, each child row only when every row it
    references was copied too (so the copy loads without a foreign-key error); a table's reference to itself
    keeps a row only when its parent row is kept. ``alembic_version`` is read by :func:`read_source`."""
    copied: dict[str, list[dict[str, Any]]] = {}
    order, _ = insert_order(metadata)
    for table in order:
        if table.name == VERSION_TABLE:
            continue
        query = sa.select(table)
        for fk in table.foreign_key_constraints:
            parent = fk.referred_table.name
            if parent == table.name or parent not in copied:
                continue  # a self-reference is filtered below; a cycle's back edge cannot be ordered
            columns = list(fk.columns)
            keys = {tuple(row[e.column.name] for e in fk.elements) for row in copied[parent]}
            keys.discard(tuple(None for _ in columns))
            allowed: list[Any] = [c.is_(None) for c in columns if c.nullable]
            if keys:
                target = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
                values = [k[0] for k in keys] if len(columns) == 1 else sorted(keys)
                allowed.append(target.in_(sorted(values, key=repr) if len(columns) == 1 else values))
            query = query.where(sa.or_(*allowed) if allowed else sa.false())
        if table.primary_key.columns:
            query = query.order_by(*table.primary_key.columns)
        rows = [dict(r._mapping) for r in conn.execute(query.limit(per_table))]
        copied[table.name] = _keep_self_consistent(table, rows)
    return _keep_consistent(order, copied)


def _keep_consistent(order: list[sa.Table], copied: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Drop rows that reference a row not in the sample, to a fixed point: the foreign keys of a cycle between
    tables (``users.team_id`` ↔ ``teams.captain_id``) could not be filtered while sampling, and a row dropped here
    can orphan rows of other tables in turn."""
    changed = True
    while changed:
        changed = False
        for table in order:
            rows = copied.get(table.name)
            if not rows:
                continue
            for fk in table.foreign_key_constraints:
                parent = fk.referred_table.name
                if parent == table.name or parent not in copied:
                    continue
                keys = {tuple(r[e.column.name] for e in fk.elements) for r in copied[parent]}
                kept = [r for r in rows if all(r[c.name] is None for c in fk.columns)
                        or tuple(r[c.name] for c in fk.columns) in keys]
                if len(kept) != len(rows):
                    rows, changed = kept, True
            copied[table.name] = _keep_self_consistent(table, rows) if changed else rows
    return copied


def _keep_self_consistent(table: sa.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose references to their own table point at a kept row (or at nothing), to a fixed point."""
    own = [fk for fk in table.foreign_key_constraints if fk.referred_table is table]
    while own:
        before = len(rows)
        for fk in own:
            present = {tuple(r[e.column.name] for e in fk.elements) for r in rows}
            rows = [r for r in rows if all(r[c.name] is None for c in fk.columns)
                    or tuple(r[c.name] for c in fk.columns) in present]
        if len(rows) == before:
            break
    return _parents_first(own, rows)


def _parents_first(own: list[sa.ForeignKeyConstraint], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered so that each row's parent (in its own table) is inserted before it: MySQL checks a foreign
    key row by row. Rows in a reference cycle cannot be inserted one by one and are left out."""
    if not own:
        return rows
    placed: set[tuple[int, tuple[Any, ...]]] = set()
    ordered: list[dict[str, Any]] = []
    waiting = rows
    while waiting:
        ready = [r for r in waiting if all(all(r[c.name] is None for c in fk.columns)
                                           or (i, tuple(r[c.name] for c in fk.columns)) in placed
                                           for i, fk in enumerate(own))]
        if not ready:
            break
        for row in ready:
            ordered.append(row)
            placed.update((i, tuple(row[e.column.name] for e in fk.elements)) for i, fk in enumerate(own))
        waiting = [r for r in waiting if not any(r is x for x in ready)]
    return ordered
