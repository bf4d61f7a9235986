"""The interface every dialect's observer implements (:class:`StepObserver`, a no-op for each hook) and what one
step did as the observers saw it (:class:`StepWatch`). The dialect modules import this, never the package."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..findings import Finding


@dataclass
class StepWatch:
    """What one step did, as the observers saw it."""

    revision: str
    #: tables before the step, with their row counts
    tables_before: dict[str, int]
    statements: list[str] = field(default_factory=list)
    rows_touched: int = 0
    #: per existing table, what the dialect observed (lock mode, rewritten, ALTER algorithm...)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: what a dialect's observer keeps between the hooks of one step
    private: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {"rows": self.tables_before.get(name, 0)})


class StepObserver:
    """The generic observer: counts statements and rows; dialects add what their server can tell."""

    dialect = ""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def owns(self, engine: Any) -> bool:
        """Whether ``engine`` is the observer's own (its probes are not the step's statements)."""
        return False

    def begin_step(self, watch: StepWatch, conn: Any) -> None:
        """Before the step, on a connection of the harness's own (``conn``, AUTOCOMMIT)."""

    def before_statement(self, watch: StepWatch, statement: str, dbapi_connection: Any) -> None:
        """Before a statement of the step runs (on the step's own DBAPI connection)."""

    def before_commit(self, watch: StepWatch, dbapi_connection: Any) -> None:
        """When the step's transaction is about to commit, still holding its locks."""

    def end_step(self, watch: StepWatch, conn: Any, file: str | None) -> list[Finding]:
        """After the step committed: the findings."""
        return []
