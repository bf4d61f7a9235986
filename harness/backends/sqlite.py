"""SQLite: every scratch database is a new file in a temporary directory removed at the end."""
from __future__ import annotations

import itertools
import shutil
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from ..config import DatabaseSettings
from .base import SCRATCH_PREFIX, Backend, Catalogue, Server, TableSize


class SQLiteServer(Server):
    kind = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.leftovers: list[str] = []
        self.server_version = f"SQLite {sqlite3.sqlite_version}"
        self._numbers = itertools.count(1)

    @contextmanager
    def scratch_database(self) -> Iterator[str]:
        path = self.directory / f"scratch_{next(self._numbers)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            _remove(path)

    def renew(self, url: str, template: str | None = None) -> bool:
        path = Path(url[len("sqlite:///"):])
        _remove(path)
        if template is not None:
            _copy(Path(template), path)
        return True

    def keep_as_template(self, url: str) -> str | None:
        template = self.directory / f"template_{next(self._numbers)}.db"  # removed with the run's directory
        _copy(Path(url[len("sqlite:///"):]), template)
        return str(template)

    def drop_template(self, template: str) -> None:
        _remove(Path(template))


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: every page of ``source`` (a write-ahead log's included, which a file copy would
    miss) into a new file ``target``: the same schema, rows, ``sqlite_sequence`` and header (``user_version``)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        leftover.unlink(missing_ok=True)


class SQLiteBackend(Backend):
    name: ClassVar[str] = "sqlite"
    implicit_tables: ClassVar[dict[str, str]] = {
        "sqlite_sequence": "SQLite creates it by itself for AUTOINCREMENT tables and never drops it",
    }
    # SQLITE_FULL: the temporary directory's file system is full
    disk_full_markers: ClassVar[tuple[str, ...]] = Backend.disk_full_markers + ("database or disk is full",)
    missing_table_markers: ClassVar[tuple[str, ...]] = Backend.missing_table_markers + ("no such table",)

    @contextmanager
    def server(self, settings: DatabaseSettings, run_id: str) -> Iterator[Server]:
        directory = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_sqlite_"))
        try:
            yield SQLiteServer(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    # -- schema quirks ---------------------------------------------------------------------------------------
    def session_settings(self, lock_timeout_s: float) -> list[str]:
        # A scratch file is thrown away: no fsync per commit, the rollback journal in memory (what a statement
        # or transaction does is unchanged; only a crash of the machine could corrupt the file)
        return [f"PRAGMA busy_timeout = {max(1, int(lock_timeout_s * 1000))}", "PRAGMA synchronous = OFF",
                "PRAGMA journal_mode = MEMORY"]

    # any value fits any column (type affinity, no length limit), and a new foreign key never checks old rows
    enforces_type_limits: ClassVar[bool] = False
    checks_existing_foreign_keys: ClassVar[bool] = False

    read_only_how: ClassVar[str] = "file opened with mode=ro, PRAGMA query_only = ON"

    def read_only_engine(self, url: sa.engine.URL) -> sa.engine.Engine:
        """The file opened with ``mode=ro`` (SQLite's own read-only open: no write, no journal, no new file),
        and ``PRAGMA query_only``."""
        path = url.database or ""
        if not path or path == ":memory:":
            raise ValueError("a SQLite --from URL must name a database file")

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
            connection.execute("PRAGMA query_only = ON")
            return connection

        return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)

    def table_sizes(self, conn: Connection) -> dict[str, TableSize]:
        """SQLite keeps no row statistics: ``count(*)`` (a scan of the table's smallest index, exact). Bytes from
        the ``dbstat`` table (its pages and its indexes') where SQLite was built with it, else unknown."""
        names = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")).scalars().all()
        try:
            pages = dict(conn.execute(sa.text(
                "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name "
                "GROUP BY m.tbl_name")).all())
        except sa.exc.OperationalError:  # no dbstat in this build
            pages = {}
        out = {}
        for name in names:
            quoted = '"' + str(name).replace('"', '""') + '"'
            count = conn.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar_one()
            size = pages.get(name)
            out[str(name)] = TableSize(int(count), None if size is None else int(size), False)
        return out

    def table_fingerprints(self, conn: Connection) -> dict[str, str] | None:
        """The CREATE statements of each table and its indexes: everything SQLite reflects is parsed from them."""
        return self.catalogue(conn).fingerprints

    def schema_objects(self, conn: Connection) -> dict[str, list[str]]:
        """Views and triggers (SQLite has no sequences, types or functions), and SQLite's own tables.

        SQLAlchemy's inspector hides ``sqlite_*`` tables; they are listed here so that what they leave behind
        is shown in the report (ignored by default, with the reason) rather than dropped silently.
        """
        return self.catalogue(conn).objects

    def catalogue(self, conn: Connection) -> Catalogue:
        """One read of ``sqlite_master``. Views as the Inspector lists them (names ``sqlite_*`` are reserved,
        so its filter changes nothing); the table names stay the Inspector's, which lists SQLite's own tables
        before SQLAlchemy 2.0 and not since."""
        parts: dict[str, list[str]] = {}
        objects: dict[str, list[str]] = {"view": [], "table": [], "trigger": []}
        for kind, name, table, sql in conn.execute(sa.text(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY tbl_name, type, name")):
            if kind in ("table", "index"):
                parts.setdefault(table, []).append(f"{kind}:{name}:{sql}")
            if kind in ("view", "trigger") or (kind == "table" and name.lower().startswith("sqlite_")):
                objects[kind].append(name)
        return Catalogue({table: "\n".join(lines) for table, lines in parts.items()}, objects)
