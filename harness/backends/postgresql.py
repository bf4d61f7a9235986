"""PostgreSQL: containers from the official ``postgres`` images, or an existing server by URL."""
from __future__ import annotations

import re
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..versions import INSPECTOR_LISTS_SEARCH_PATH, container_class, scalars
from .names import DEFAULT_DRIVERS
from .base import ServerBackend, TableSize


# '0'::integer, 'draft'::post_status, 'x'::character varying(20), '{}'::jsonb[] — PostgreSQL stores a server
# default with an explicit cast to the column's type, where the model says just '0'.
_CAST = re.compile(r"::[A-Za-z_][\w \"]*(\(\d+(,\s*\d+)?\))?(\[\])?$")


#: a never-analysed table whose heap is at most this big has its rows counted (``count(*)``) instead of unknown
_COUNTABLE_BYTES = 64 * 1024 * 1024


#: the oid of the connection's default schema (``current_schema()``). Not ``current_schema()::regnamespace``: that
#: cast parses the name as an identifier, so a schema named ``MySchema`` is looked up as ``myschema`` and the
#: statement fails; NULL (no rows) when no schema of the search path exists, as ``current_schema()`` is.
CURRENT_SCHEMA = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"


#: the tables (kinds ``r`` and ``p``) of ``pg_class c`` that the Inspector's ``get_table_names()`` lists, for the
#: SQLAlchemy the worker runs (:data:`harness.versions.INSPECTOR_LISTS_SEARCH_PATH`)
_LISTED_TABLES = "c.relkind IN ('r', 'p') AND " + (
    "pg_table_is_visible(c.oid) AND c.relpersistence <> 't' AND c.relnamespace <> 'pg_catalog'::regnamespace"
    if INSPECTOR_LISTS_SEARCH_PATH else f"c.relnamespace = {CURRENT_SCHEMA}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgreSQLBackend(ServerBackend):
    default_driver: ClassVar[str] = DEFAULT_DRIVERS["postgresql"]
    name: ClassVar[str] = "postgresql"
    admin_database: ClassVar[str | None] = "postgres"
    fast_command: ClassVar[str | None] = "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    # PGDATA is /var/lib/postgresql/data up to 17 (a VOLUME there: only a mount at that very path replaces it),
    # and below /var/lib/postgresql from 18 on
    fast_tmpfs: ClassVar[tuple[str, ...]] = ("/var/lib/postgresql", "/var/lib/postgresql/data")
    # libpq's words for a server that died under an open connection, was shut down, or is restarting
    server_gone_markers: ClassVar[tuple[str, ...]] = ServerBackend.server_gone_markers + (
        "server closed the connection unexpectedly", "terminating connection due to administrator command",
        "the database system is shutting down", "the database system is starting up",
        "the database system is in recovery mode", "the database system is not yet accepting connections",
        "connection already closed", "no connection to the server",
        "ssl syscall error: eof detected", "could not receive data from server")
    # a server on its way down or up answers new connections so for a moment (or takes them and hangs up): the
    # probe waits for the outcome
    settling_markers: ClassVar[tuple[str, ...]] = (
        "the database system is shutting down", "the database system is starting up",
        "the database system is not yet accepting connections", "server closed the connection unexpectedly")

    def make_container(self, image: str, password: str) -> Any:
        PostgresContainer = container_class("postgres", "PostgresContainer")
        return PostgresContainer(image, username="harness", password=password, dbname="postgres", driver="psycopg2")

    def container_url(self, container: Any, password: str) -> str:
        return container.get_connection_url()

    def create_database(self, conn: Connection, name: str) -> None:
        conn.execute(sa.text(f"CREATE DATABASE {_quote(name)}"))

    # CREATE DATABASE copies template1 (0.4-1 s on a loaded machine); a rename is a catalogue update
    renames_databases: ClassVar[bool] = True

    def rename_database(self, conn: Connection, name: str, new_name: str) -> bool:
        # refused (an error, which the caller takes as False) while someone is connected to it
        conn.execute(sa.text(f"ALTER DATABASE {_quote(name)} RENAME TO {_quote(new_name)}"))
        return True

    # CREATE DATABASE ... TEMPLATE copies the template's files: every object, row and sequence's state as it is
    # (only database-level settings, ALTER DATABASE ... SET, and grants on the database itself are not copied)
    copies_databases: ClassVar[bool] = True

    def copy_database(self, conn: Connection, name: str, template: str) -> bool:
        conn.execute(sa.text(f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)}"))
        return True

    def drop_database(self, conn: Connection, name: str) -> None:
        # A killed client does not stop PostgreSQL: its backend may still hold the database, and a plain DROP
        # DATABASE then fails with "being accessed by other users". 13+ has WITH (FORCE); older servers need
        # the sessions terminated first.
        if conn.dialect.server_version_info >= (13,):
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
            return
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(name)}"))

    def list_databases(self, conn: Connection) -> list[str]:
        return list(scalars(conn.execute(sa.text("SELECT datname FROM pg_database ORDER BY datname"))))

    def describe_version(self, conn: Connection) -> str:
        version = conn.execute(sa.text("SHOW server_version")).scalar()
        return f"PostgreSQL {str(version).split()[0]}"

    # -- schema quirks ---------------------------------------------------------------------------------------
    def schema_objects(self, conn: Connection) -> dict[str, list[str]]:
        """Views (plain and materialized), plus what ``DROP TABLE`` leaves behind on PostgreSQL: enum TYPEs
        (``drop_table`` does not drop them, and the next upgrade then fails with "type already exists"),
        free-standing sequences, functions."""
        # One statement (the stairway lists these twice per revision): each kind's names, tagged with the kind,
        # from the catalogue's own tables (pg_views and pg_matviews are views over pg_class that join more: the
        # statement took twice as long through them). The fingerprints stay a statement of their own: read with
        # this one as a UNION ALL, their plan got slower.
        # Views from the catalog, not the Inspector: SQLAlchemy 1.4's get_view_names() also lists materialized
        # views (2.0 has get_materialized_view_names() for them), so each would be counted twice there.
        # A SERIAL / identity sequence is owned by its column (pg_depend 'a' / 'i') and goes with the table:
        # only free-standing sequences are objects of their own.
        rows = conn.execute(sa.text(
            f"WITH s AS {CURRENT_SCHEMA} "
            "SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' ELSE 'sequence' END, "
            "c.relname FROM pg_class c JOIN s ON c.relnamespace = s.oid WHERE c.relkind IN ('v', 'm', 'S') "
            "AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
            "AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))) "
            "UNION ALL SELECT 'enum_type', t.typname FROM pg_type t JOIN s ON t.typnamespace = s.oid "
            "WHERE t.typtype = 'e' "
            "UNION ALL SELECT 'function', p.proname FROM pg_proc p JOIN s ON p.pronamespace = s.oid "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"))
        objects: dict[str, list[str]] = {kind: [] for kind in
                                         ("view", "materialized_view", "enum_type", "sequence", "function")}
        for kind, name in rows:
            objects[kind].append(name)
        return objects

    #: the fingerprints' rows are the tables the Inspector lists, whichever SQLAlchemy lists them
    fingerprints_list_tables: ClassVar[bool] = True
    #: rendered from the catalogue (format_type, pg_get_expr, pg_get_constraintdef, pg_get_indexdef)
    fingerprints_are_canonical: ClassVar[bool] = True

    def table_fingerprints(self, conn: Connection) -> dict[str, str]:
        """Per table the Inspector's ``get_table_names()`` lists, from the catalogue in one query: columns in order
        (name, type with modifiers, an enum type's labels, NOT NULL, default expression, identity, generated), every
        constraint's definition, every index's. (The labels: a reflected column's Enum holds them, and the data
        check generates its values from them.)"""
        rows = conn.execute(sa.text("""
            SELECT c.relname, concat_ws(E'\n',
              (SELECT string_agg(concat_ws(':', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                           pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                                           (SELECT string_agg(e.enumlabel, '|' ORDER BY e.enumsortorder)
                                              FROM pg_enum e WHERE e.enumtypid = a.atttypid)),
                                 ',' ORDER BY a.attnum)
                 FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
              (SELECT string_agg(con.conname || ':' || pg_get_constraintdef(con.oid), ',' ORDER BY con.conname)
                 FROM pg_constraint con WHERE con.conrelid = c.oid),
              (SELECT string_agg(pg_get_indexdef(i.indexrelid), ',' ORDER BY pg_get_indexdef(i.indexrelid))
                 FROM pg_index i WHERE i.indrelid = c.oid))
            FROM pg_class c WHERE """ + _LISTED_TABLES))
        return {name: text or "" for name, text in rows}

    def session_settings(self, lock_timeout_s: float) -> list[str]:
        return [f"SET lock_timeout = '{max(1, int(lock_timeout_s * 1000))}ms'"]

    read_only_how: ClassVar[str] = ("connect option default_transaction_read_only=on, SET SESSION CHARACTERISTICS "
                                    "AS TRANSACTION READ ONLY, one REPEATABLE READ READ ONLY transaction, rolled back")

    # -- rehearse ---------------------------------------------------------------------------------------------
    def read_only_connect_args(self) -> dict[str, Any]:
        # default_transaction_read_only from the connection's start-up packet: even the driver's own first
        # statements run read-only, and a write fails with "cannot execute ... in a read-only transaction"
        return {"connect_timeout": 10, "options": "-c default_transaction_read_only=on"}

    def read_only_session(self) -> list[str]:
        # a catalogue read that would wait for a lock (a migration running there) gives up instead of queueing
        return ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET SESSION lock_timeout = '10s'"]

    def begin_read_only(self) -> str | None:
        return "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

    def table_sizes(self, conn: Connection) -> dict[str, TableSize]:
        """``pg_class.reltuples`` scaled to the table's current number of pages, as the planner does (an
        estimate from the last ANALYZE / VACUUM), and ``pg_total_relation_size`` (indexes and TOAST included).
        A table never analysed has ``reltuples`` -1 (0 before PostgreSQL 14, with ``relpages`` 0): its row
        count is unknown unless it is empty."""
        rows = conn.execute(sa.text(
            "SELECT c.relname, c.reltuples, c.relpages, pg_relation_size(c.oid), pg_total_relation_size(c.oid), "
            "current_setting('block_size')::int FROM pg_class c "
            f"WHERE c.relkind IN ('r', 'p') AND c.relnamespace = {CURRENT_SCHEMA}"))
        out = {}
        for name, tuples, pages, heap, total, block in rows:
            current_pages = int(heap) // int(block)
            if tuples is not None and tuples >= 0 and pages:
                count: int | None = int(round(float(tuples) / pages * current_pages))
            elif heap == 0:
                count = 0  # no page at all: empty, whatever the statistics say
            elif heap <= _COUNTABLE_BYTES:  # never analysed, and small: counting its rows is a cheap read
                count = int(conn.execute(sa.text(f"SELECT count(*) FROM {_quote(str(name))}")).scalar() or 0)
                out[str(name)] = TableSize(count, int(total), False)
                continue
            else:
                count = None  # never analysed, and big: run ANALYZE on it for an estimate
            out[str(name)] = TableSize(count, int(total), True)
        return out

    def image_for_version(self, version_info: tuple[int, ...], server_version: str) -> str | None:
        # from 10 on the major version is one number (15.4 -> postgres:15); before, two (9.6 -> postgres:9.6)
        if not version_info:
            return None
        major = version_info[:1] if version_info[0] >= 10 else version_info[:2]
        return "postgres:" + ".".join(map(str, major))

    def copyable_default(self, text: str | None) -> str | None:
        # a SERIAL column's nextval('<table>_<col>_seq'::regclass) names a sequence an empty database does not
        # have; CREATE TABLE with SERIAL makes it again
        if text is not None and text.startswith("nextval("):
            return None
        return text

    # a failed cast in a SELECT raises (invalid input syntax), which a read-only query can try
    cast_raises: ClassVar[bool] = True
    # UndefinedTable: relation "users" does not exist
    missing_table_markers: ClassVar[tuple[str, ...]] = ServerBackend.missing_table_markers + ("UndefinedTable",)

    def not_matching(self, column: Any, pattern: str) -> Any:
        return sa.not_(sa.cast(column, sa.Text).op("~")(pattern))

    def after_rows_copied(self, conn: Connection, table: sa.Table) -> None:
        # rows copied with their ids leave a SERIAL / identity sequence at 1: the next INSERT a data migration
        # makes would collide with a copied id
        for column in table.primary_key.columns:
            sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": _quote(table.name), "c": column.name}).scalar()
            if sequence:
                conn.execute(sa.text(f"SELECT setval(:s, (SELECT coalesce(max({_quote(column.name)}), 0) + 1 "
                                     f"FROM {_quote(table.name)}), false)"), {"s": sequence})

    def normalize_default(self, text: str | None) -> str | None:
        if text is None:
            return None
        value = " ".join(str(text).split())
        while _CAST.search(value):
            value = _CAST.sub("", value).strip()
        return super().normalize_default(value)
