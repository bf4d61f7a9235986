"""MySQL and MariaDB: containers from the official ``mysql`` images, or an existing server by URL."""
from __future__ import annotations

import re
import weakref
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..versions import container_class, scalars
from .names import DEFAULT_DRIVERS
from .base import Catalogue, ServerBackend, TableSize


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


#: the MySQL protocol's CLIENT_MULTI_STATEMENTS, and CLIENT_FOUND_ROWS (which SQLAlchemy sets, and ``client_flag``
#: in ``connect_args`` replaces)
_MULTI_STATEMENTS, _FOUND_ROWS = 1 << 16, 2
#: the drivers that take ``client_flag`` and give each statement's rows in turn with ``nextset()``
_MULTI_DRIVERS = ("pymysql", "mysqldb")
#: per engine of the app, the engine its catalogue is read through (``None``: statement by statement on its own)
_READERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _reader(conn: Connection) -> Any:
    """An engine on ``conn``'s database whose connections take several statements in one round trip, for the
    ``SHOW CREATE TABLE`` of every table (a snapshot, twice per revision in the stairway; a step of the data check):
    26 round trips through SQLAlchemy took 5-6 ms, one 0.8 ms. The app's own connections are left as they are
    (several statements at once is a flag of the connection). ``None`` where the driver has no such flag, or the
    URL sets ``client_flag`` itself."""
    engine = conn.engine
    if engine not in _READERS:
        reader = None
        if engine.url.get_driver_name() in _MULTI_DRIVERS and "client_flag" not in engine.url.query:
            try:
                # pre-pinged: a connection kept from before the server went away and came back is made again
                # (the app's pool is invalidated by its own connection's error, not this one's)
                reader = sa.create_engine(engine.url, pool_size=1, pool_pre_ping=True,
                                          connect_args={"client_flag": _MULTI_STATEMENTS | _FOUND_ROWS})
            except Exception:  # noqa: BLE001 - an option the driver refuses: statement by statement, as before
                reader = None
        _READERS[engine] = reader
    return _READERS[engine]


def _show_create_at_once(conn: Connection, names: list[str]) -> list[str] | None:
    """``SHOW CREATE TABLE`` of each of ``names`` (of ``conn``'s current database), in one round trip; ``None``
    where that cannot be done (:func:`_reader`). Read on a connection of its own: it sees what is committed,
    which is all there is between two steps."""
    reader = _reader(conn)
    database = conn.engine.url.database  # the current database of a connection to a scratch database
    if reader is None or not database:
        return None
    statement = "; ".join(f"SHOW CREATE TABLE {_quote(database)}.{_quote(name)}" for name in names)
    try:
        side = reader.connect()  # engine_connect listeners (the worker's lock time limits) run on it too
    except sa.exc.DBAPIError:
        # the URL alone does not reach the database the app's engine reaches (its own connect arguments or
        # creator): read on the app's connection from now on, which also says why if the server is gone
        _READERS[conn.engine] = None
        return None
    dbapi_error = reader.dialect.dbapi.Error
    with side:
        cursor = side.connection.cursor()
        try:
            cursor.execute(statement)
            texts = [cursor.fetchone()[1]]
            while cursor.nextset():
                texts.append(cursor.fetchone()[1])
        except dbapi_error as exc:  # as SQLAlchemy raises it on the app's connection (the faults read it so)
            raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi_error) from exc
        finally:
            cursor.close()
    if len(texts) != len(names):  # pragma: no cover - the server answers every statement or raises
        raise RuntimeError(f"SHOW CREATE TABLE of {len(names)} tables gave {len(texts)} answers")
    return texts


def _listing(conn: Connection) -> tuple[list[str], dict[str, list[str]]]:
    """The current database's tables, and its views, routines, triggers and (MariaDB) sequences, in one query. Views
    as the Inspector's ``get_view_names()`` lists them: ``SHOW FULL TABLES``' rows of type ``VIEW`` and ``SYSTEM
    VIEW``, which ``information_schema.tables`` holds too."""
    rows = conn.execute(sa.text(
        "SELECT table_type, table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "UNION ALL SELECT 'ROUTINE', routine_name FROM information_schema.routines WHERE routine_schema = DATABASE() "
        "UNION ALL SELECT 'TRIGGER', trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"))
    kinds = {"VIEW": "view", "SYSTEM VIEW": "view", "ROUTINE": "routine", "TRIGGER": "trigger", "SEQUENCE": "sequence"}
    tables: list[str] = []
    objects: dict[str, list[str]] = {"view": [], "routine": [], "trigger": [], "sequence": []}
    for kind, name in rows:
        if kind == "BASE TABLE":
            tables.append(name)
        elif kind in kinds:
            objects[kinds[kind]].append(name)
    return sorted(tables), objects


def _only_tables(conn: Connection, schema: str) -> list[str] | None:
    """The base tables of database ``schema``, or ``None`` when it holds anything else (a view, whose text names
    its database; a trigger, a routine, an event, a sequence or a system-versioned table): what no table-by-table
    copy or move carries exactly."""
    params = {"s": schema}
    tables = conn.execute(sa.text("SELECT table_name, table_type FROM information_schema.tables "
                                  "WHERE table_schema = :s ORDER BY table_name"), params).all()
    others = conn.execute(sa.text(
        "SELECT (SELECT count(*) FROM information_schema.triggers WHERE trigger_schema = :s)"
        " + (SELECT count(*) FROM information_schema.routines WHERE routine_schema = :s)"
        " + (SELECT count(*) FROM information_schema.events WHERE event_schema = :s)"), params).scalar_one()
    if others or any(kind != "BASE TABLE" for _, kind in tables):
        return None
    return [name for name, _ in tables]


def _foreign_keys(conn: Connection, schema: str) -> list[tuple[Any, ...]]:
    """Each foreign key of database ``schema``: its table, name, referred table, and whether that table is in the
    same database (what a move of all its tables must keep)."""
    return [tuple(row) for row in conn.execute(sa.text(
        "SELECT table_name, constraint_name, referenced_table_name, unique_constraint_schema = constraint_schema "
        "FROM information_schema.referential_constraints WHERE constraint_schema = :s ORDER BY 1, 2"), {"s": schema})]


#: lines of ``SHOW CREATE TABLE`` naming an index, or a constraint (a foreign key, a CHECK): each kind is listed in
#: the order they were made, which says nothing of the table
_INDEX_LINE = re.compile(r"  (?:(?:UNIQUE|FULLTEXT|SPATIAL) )?KEY ")
_CONSTRAINT_LINE = re.compile(r"  CONSTRAINT ")


def _canonical(text: str) -> str:
    """A table's ``SHOW CREATE TABLE`` as its fingerprint: without the AUTO_INCREMENT counter, which moves with every
    insert, and with its indexes, then its constraints, each in one order (a text already in that order is left as
    it is). The server lists them in the order they were made, and alembic makes a new table's indexes in the order
    of a Python set (``Table.indexes``): the same table made twice by the same migration can list them in two
    orders. Reflection does not depend on it (the snapshot sorts them; the rows the data check writes do not
    depend on it), so neither does the fingerprint."""
    lines = re.sub(r" AUTO_INCREMENT=\d+", "", text).split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith(")")), len(lines))
    body = [line.rstrip(",") for line in lines[1:end]]
    indexes = [line for line in body if _INDEX_LINE.match(line)]
    constraints = [line for line in body if _CONSTRAINT_LINE.match(line)]
    if indexes == sorted(indexes) and constraints == sorted(constraints):
        return "\n".join(lines)
    ordered = [line for line in body if not _INDEX_LINE.match(line) and not _CONSTRAINT_LINE.match(line)]
    ordered += sorted(indexes) + sorted(constraints)
    return "\n".join(lines[:1] + [line + "," for line in ordered[:-1]] + ordered[-1:] + lines[end:])


class MySQLBackend(ServerBackend):
    default_driver: ClassVar[str] = DEFAULT_DRIVERS["mysql"]
    name: ClassVar[str] = "mysql"
    # the official images (and MariaDB's) take server options as the command; the binary log is on by default in
    # MySQL 8 and only costs writes here
    fast_command: ClassVar[str | None] = "--innodb-flush-log-at-trx-commit=0 --skip-log-bin"
    fast_tmpfs: ClassVar[tuple[str, ...]] = ("/var/lib/mysql",)
    # PyMySQL's errors 2003 / 2006 / 2013 and a server shutting down (1053)
    server_gone_markers: ClassVar[tuple[str, ...]] = ServerBackend.server_gone_markers + (
        "lost connection to mysql server", "mysql server has gone away", "can't connect to mysql server",
        "server shutdown in progress")
    settling_markers: ClassVar[tuple[str, ...]] = ("server shutdown in progress",)
    # InnoDB out of disk: "The table 't' is full" (1114), "Got error 28 from storage engine", errno 28 (ENOSPC)
    disk_full_markers: ClassVar[tuple[str, ...]] = ServerBackend.disk_full_markers + (
        "is full", "error 28 ", "errno: 28")

    def make_container(self, image: str, password: str) -> Any:
        MySqlContainer = container_class("mysql", "MySqlContainer")
        # As root the harness may create and drop scratch databases; the container's own database is unused.
        return MySqlContainer(image, dialect="pymysql", username="root", password=password, dbname="harness")

    def container_url(self, container: Any, password: str) -> str:
        return container.get_connection_url()

    def create_database(self, conn: Connection, name: str) -> None:
        conn.execute(sa.text(f"CREATE DATABASE {_quote(name)} CHARACTER SET utf8mb4"))

    # No CREATE DATABASE ... TEMPLATE: a database holding only base tables is copied table by table, each made
    # from its own SHOW CREATE TABLE (columns, indexes, foreign keys, CHECKs, options and the AUTO_INCREMENT
    # counter, verbatim) and filled with INSERT ... SELECT. Views (their text names the database), triggers,
    # routines, events, sequences and system-versioned tables are not copied: a database with any is not copied.
    copies_databases: ClassVar[bool] = True

    def copy_database(self, conn: Connection, name: str, template: str) -> bool:
        params = {"s": template}
        tables = _only_tables(conn, template)
        if tables is None:
            return False
        generated = {(t, c) for t, c in conn.execute(sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s "
            # not MySQL 8's DEFAULT_GENERATED (a column with an expression default: its values are copied)
            "AND (extra LIKE '%VIRTUAL GENERATED%' OR extra LIKE '%STORED GENERATED%' OR extra LIKE '%PERSISTENT%')"),
            params)}
        columns: dict[str, list[str]] = {}
        for table, column in conn.execute(sa.text(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s "
                "ORDER BY table_name, ordinal_position"), params):
            if (table, column) not in generated:
                columns.setdefault(table, []).append(_quote(column))
        self.create_database(conn, name)
        cursor = conn.connection.dbapi_connection.cursor()  # the DDL verbatim: no bind-parameter parsing
        try:
            # foreign keys to tables not made yet; an explicit 0 in an AUTO_INCREMENT column stays 0
            cursor.execute("SET SESSION foreign_key_checks = 0")
            cursor.execute("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')")
            cursor.execute(f"USE {_quote(name)}")
            for table in tables:
                cursor.execute(f"SHOW CREATE TABLE {_quote(template)}.{_quote(table)}")
                cursor.execute(cursor.fetchone()[1])
                listed = ", ".join(columns[table])
                cursor.execute(f"INSERT INTO {_quote(name)}.{_quote(table)} ({listed}) "
                               f"SELECT {listed} FROM {_quote(template)}.{_quote(table)}")
        finally:
            cursor.close()
        return True

    # No RENAME DATABASE either: a database holding only base tables (a spare, copied from a --since template while
    # a session ran; the scratch database a session used) is renamed by moving its tables into a database made for
    # them, all in one RENAME TABLE, and dropping the emptied one. One RENAME TABLE is all or nothing, each table
    # keeps its rows, indexes, foreign keys, CHECKs, options and AUTO_INCREMENT counter, and a foreign key to a table
    # moved by the same statement follows it (MariaDB: its SHOW CREATE TABLE is the same text after the move; the
    # foreign keys are read before and after, so a server where one would not follow keeps nothing moved). A
    # database holding a view, a trigger, a routine, an event or a sequence, or that someone is connected to (whose
    # locks the move would wait for), is not renamed: the caller drops it, or copies the template, as before.
    renames_databases: ClassVar[bool] = True

    def rename_database(self, conn: Connection, name: str, new_name: str) -> bool:
        if scalars(conn.execute(sa.text("SELECT id FROM information_schema.processlist WHERE db = :name "
                                        "AND id <> CONNECTION_ID()"), {"name": name})):
            return False
        tables = _only_tables(conn, name)
        if tables is None:
            return False
        keys = _foreign_keys(conn, name)
        self.create_database(conn, new_name)
        cursor = conn.connection.dbapi_connection.cursor()  # names verbatim: no bind-parameter parsing
        try:
            # a lock someone still holds on a table (a session this server does not show): not waited for
            cursor.execute("SET SESSION lock_wait_timeout = 10")
            if tables:
                cursor.execute("RENAME TABLE " + ", ".join(
                    f"{_quote(name)}.{_quote(t)} TO {_quote(new_name)}.{_quote(t)}" for t in tables))
            moved = _foreign_keys(conn, new_name) == keys
        except Exception:  # noqa: BLE001 - nothing was moved (one RENAME TABLE is all or nothing)
            moved = False
        finally:
            cursor.close()
        if not moved:  # the caller drops ``name`` (its tables may be gone) and makes a database without it
            try:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(new_name)}"))
            except sa.exc.DBAPIError:  # the server went away: the caller's drop finds out and says so
                pass
            return False
        try:
            self.drop_database(conn, name)  # emptied
        except sa.exc.DBAPIError:  # the server went away (the tables did move): the caller's next step says so
            pass
        return True

    def drop_database(self, conn: Connection, name: str) -> None:
        # A session left in the scratch database (a killed worker, a hung step) holds metadata locks that make
        # DROP DATABASE wait forever: end those sessions first.
        ids = scalars(conn.execute(sa.text("SELECT id FROM information_schema.processlist WHERE db = :name"),
                                   {"name": name}))
        for session_id in ids:
            try:
                conn.execute(sa.text(f"KILL {int(session_id)}"))
            except sa.exc.DBAPIError:  # it ended by itself meanwhile
                pass
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(name)}"))

    def list_databases(self, conn: Connection) -> list[str]:
        return sorted(scalars(conn.execute(sa.text("SHOW DATABASES"))))

    def describe_version(self, conn: Connection) -> str:
        version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
        number = version.split("-")[0]
        return f"MariaDB {number}" if "mariadb" in version.lower() else f"MySQL {number}"

    # -- schema quirks ---------------------------------------------------------------------------------------
    def schema_objects(self, conn: Connection) -> dict[str, list[str]]:
        """Views, plus stored routines, triggers and (MariaDB) sequences of the scratch database."""
        return _listing(conn)[1]

    #: the tables of information_schema.tables of type BASE TABLE: the Inspector's ``SHOW FULL TABLES`` rows
    fingerprints_list_tables: ClassVar[bool] = True
    #: SHOW CREATE TABLE is the server's own rendering of the table, not the statement that made it
    fingerprints_are_canonical: ClassVar[bool] = True

    def table_fingerprints(self, conn: Connection) -> dict[str, str] | None:
        """``SHOW CREATE TABLE`` of each table (what SQLAlchemy's MySQL reflection parses), without the
        AUTO_INCREMENT counter, which moves with every insert."""
        names = scalars(conn.execute(sa.text("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")))
        return self._show_create(conn, names)

    def catalogue(self, conn: Connection) -> Catalogue:
        """One query lists the tables and every other object (:func:`_listing`), then a ``SHOW CREATE TABLE`` per
        table (all in one round trip where the driver allows: :func:`_show_create_at_once`). The table names are the
        Inspector's: its ``get_table_names()`` is ``SHOW FULL TABLES``' rows of type ``BASE TABLE``, the same rows
        as ``information_schema.tables``' for the current database."""
        tables, objects = _listing(conn)
        return Catalogue(self._show_create(conn, tables), objects, tables)

    @staticmethod
    def _show_create(conn: Connection, names: list[str]) -> dict[str, str]:
        texts = _show_create_at_once(conn, names) if len(names) > 1 else None
        if texts is None:
            texts = [conn.execute(sa.text(f"SHOW CREATE TABLE {_quote(name)}")).first()[1] for name in names]
        return {name: _canonical(text) for name, text in zip(names, texts)}

    def session_settings(self, lock_timeout_s: float) -> list[str]:
        # DDL waits on metadata locks (lock_wait_timeout), DML on row locks (innodb_lock_wait_timeout)
        seconds = max(1, int(lock_timeout_s))
        return [f"SET SESSION lock_wait_timeout = {seconds}", f"SET SESSION innodb_lock_wait_timeout = {seconds}"]

    read_only_how: ClassVar[str] = ("SET SESSION TRANSACTION READ ONLY, one START TRANSACTION WITH CONSISTENT "
                                    "SNAPSHOT, READ ONLY, rolled back")

    # -- rehearse ---------------------------------------------------------------------------------------------
    def read_only_connect_args(self) -> dict[str, Any]:
        return {"connect_timeout": 10}

    def read_only_session(self) -> list[str]:
        # every transaction of the session is READ ONLY: a write fails with ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        # a read that would wait for a metadata lock (DDL running there) gives up instead of queueing
        return ["SET SESSION TRANSACTION READ ONLY", "SET SESSION lock_wait_timeout = 10"]

    def begin_read_only(self) -> str | None:
        return "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"

    def table_sizes(self, conn: Connection) -> dict[str, TableSize]:
        """``information_schema.tables``: ``TABLE_ROWS`` (InnoDB's estimate from sampled index pages, easily off
        by 40-50 %) and ``DATA_LENGTH + INDEX_LENGTH``. MySQL 8 caches these figures for a day
        (``information_schema_stats_expiry``): the session asks for fresh ones; MariaDB reads them live."""
        if "mariadb" not in str(conn.execute(sa.text("SELECT VERSION()")).scalar_one()).lower():
            conn.execute(sa.text("SET SESSION information_schema_stats_expiry = 0"))
        rows = conn.execute(sa.text(
            "SELECT table_name, table_rows, data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"))
        return {str(name): TableSize(None if count is None else int(count), None if size is None else int(size), True)
                for name, count, size in rows}

    def image_for_version(self, version_info: tuple[int, ...], server_version: str) -> str | None:
        # MySQL 8.0.36 -> mysql:8.0, MariaDB 10.11.6 -> mariadb:10.11 (the official images' minor-version tags)
        numbers = server_version.split()[-1].split(".")[:2]
        if len(numbers) < 2:
            return None
        product = "mariadb" if server_version.lower().startswith("mariadb") else "mysql"
        return f"{product}:{'.'.join(numbers)}"

    # strict mode still fills '' / 0 / the zero date into existing rows for ADD COLUMN ... NOT NULL without a
    # default (FIELD_NOTES: MariaDB fills '')
    fills_implicit_default: ClassVar[bool] = True
    # (1146, "Table 'db.users' doesn't exist"), (1051, "Unknown table 'db.users'")
    missing_table_markers: ClassVar[tuple[str, ...]] = ServerBackend.missing_table_markers + (
        "doesn't exist", "Unknown table")

    def not_matching(self, column: Any, pattern: str) -> Any:
        return sa.not_(sa.cast(column, sa.CHAR).op("REGEXP")(pattern))

    def normalize_default(self, text: str | None) -> str | None:
        value = super().normalize_default(text)
        # MySQL has no boolean type: server_default=sa.true() / sa.false() is stored and reflected as 1 / 0.
        return {"true": "1", "false": "0"}.get(value or "", value)

    def same_fk_action(self, model: str | None, database: str | None) -> bool:
        # InnoDB treats RESTRICT and NO ACTION alike (checked immediately), and reflects "no action given" as
        # RESTRICT on MariaDB.
        def canonical(action: str | None) -> str:
            spelled = (action or "NO ACTION").upper()
            return "NO ACTION" if spelled == "RESTRICT" else spelled

        return canonical(model) == canonical(database)

    def is_implicit_check(self, name: str | None, sqltext: str) -> bool:
        # MariaDB stores JSON as LONGTEXT and adds CHECK (json_valid(`col`)) named after the column by itself.
        return sqltext.replace("`", "").lower().startswith("json_valid(")
