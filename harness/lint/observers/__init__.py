"""What the database really does during one migration step, one module per dialect behind one small interface.

A :class:`StepObserver` is attached to the app's engine for a whole ``observe`` session. For each step it is told
which tables existed (with their row counts) before the step, sees every statement the step sends (and may probe
the server before a statement runs), sees each commit of the step's transaction, and in the end turns what it saw
into :class:`~harness.lint.findings.Finding`\\ s and an observation record for the report. Tables the step itself
creates are never findings: nobody uses them yet.
"""
from __future__ import annotations

from typing import Any

from .base import StepObserver, StepWatch

__all__ = ["StepObserver", "StepWatch", "observer_for"]


def observer_for(dialect: str, engine: Any) -> StepObserver:
    """The observer of ``dialect``'s steps on ``engine``: its dialect's module."""
    if dialect == "postgresql":
        from .postgresql import PostgreSQLObserver

        return PostgreSQLObserver(engine)
    if dialect == "mysql":
        from .mysql import MySQLObserver

        return MySQLObserver(engine)
    from .sqlite import SQLiteObserver

    return SQLiteObserver(engine)
