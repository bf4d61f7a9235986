"""One backend per dialect, found by name: ``get_backend("postgresql")``, its module imported then (SQLAlchemy with
it); the names of what the harness makes (:mod:`.names`) cost no import.

Layer: it may import ``config/`` and the plain modules ``errors``, ``results``, ``versions``, ``_version`` (the
layers below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Backend, Server

#: dialect → (module, class): imported when first asked for, so that importing :mod:`harness.backends.names`
#: costs no SQLAlchemy
_CLASSES: dict[str, tuple[str, str]] = {
    "sqlite": ("sqlite", "SQLiteBackend"),
    "postgresql": ("postgresql", "PostgreSQLBackend"),
    "mysql": ("mysql", "MySQLBackend"),
}


def _backend_class(dialect: str) -> type[Backend]:
    module, name = _CLASSES[dialect]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)  # type: ignore[no-any-return]


def get_backend(dialect: str) -> Backend:
    """The backend for ``dialect`` (``sqlite``, ``postgresql`` or ``mysql``; ``mariadb`` is ``mysql``)."""
    return _backend_class("mysql" if dialect == "mariadb" else dialect)()


def __getattr__(name: str) -> Any:
    if name in ("Backend", "Server"):
        from . import base

        return getattr(base, name)
    if name == "BACKENDS":
        return {dialect: _backend_class(dialect) for dialect in _CLASSES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKENDS", "Backend", "Server", "get_backend"]
