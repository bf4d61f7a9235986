"""PostgreSQL: containers from the official ``postgres`` images, or an existing server by URL."""
from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .base import ServerBackend


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgreSQLBackend(ServerBackend):
    default_driver: ClassVar[str] = "psycopg2"
    name: ClassVar[str] = "postgresql"
    admin_database: ClassVar[str | None] = "postgres"

    def make_container(self, image: str, password: str) -> Any:
        try:  # testcontainers >= 4.15 moved the database modules
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # pragma: no cover - older testcontainers 4.x
            from testcontainers.postgres import PostgresContainer
        return PostgresContainer(image, username="harness", password=password, dbname="postgres", driver="psycopg2")

    def container_url(self, container: Any, password: str) -> str:
        return container.get_connection_url()

    def create_database(self, conn: Connection, name: str) -> None:
        conn.execute(sa.text(f"CREATE DATABASE {_quote(name)}"))

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
        return list(conn.execute(sa.text("SELECT datname FROM pg_database ORDER BY datname")).scalars())

    def describe_version(self, conn: Connection) -> str:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        return f"PostgreSQL {str(version).split()[0]}"
