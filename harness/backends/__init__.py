"""One backend per dialect, found by name: ``get_backend("postgresql")``.

Layer: it may import ``config/`` and the plain modules ``errors``, ``results``, ``versions``, ``_version`` (the
layers below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations

from .base import Backend, Server
from .mysql import MySQLBackend
from .postgresql import PostgreSQLBackend
from .sqlite import SQLiteBackend

BACKENDS: dict[str, type[Backend]] = {
    SQLiteBackend.name: SQLiteBackend,
    PostgreSQLBackend.name: PostgreSQLBackend,
    MySQLBackend.name: MySQLBackend,
}


def get_backend(dialect: str) -> Backend:
    """The backend for ``dialect`` (``sqlite``, ``postgresql`` or ``mysql``; ``mariadb`` is ``mysql``)."""
    return BACKENDS["mysql" if dialect == "mariadb" else dialect]()


__all__ = ["BACKENDS", "Backend", "Server", "get_backend"]
