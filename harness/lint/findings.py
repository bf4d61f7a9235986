"""The lint finding record (its ``to_dict`` is the JSON contract) and the rule catalogue entry."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES: tuple[str, ...] = (INFO, WARNING, ERROR)  # lowest first


def at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is ``threshold`` or worse."""
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


@dataclass(frozen=True)
class Rule:
    """One lint rule: what ``--list-rules`` lists and ``--explain RULE`` prints."""

    name: str
    severity: str
    #: the dialects it applies to (``sqlite``, ``postgresql``, ``mysql``)
    dialects: tuple[str, ...]
    #: ``observed`` (what the database did), ``sql`` (the rendered SQL), ``squawk``, ``offline``, ``source``
    source: str
    summary: str
    why: str
    safer: str


@dataclass(frozen=True)
class Finding:
    """One thing a pending step will do that a live database may not take well."""

    rule: str
    severity: str
    database: str
    revision: str
    message: str
    source: str
    #: the migration file (as given to alembic) and the line the finding is about, when known
    file: str | None = None
    line: int | None = None
    #: the table and the SQL statement it is about, when there is one
    table: str | None = None
    statement: str | None = None
    #: the reason of the ``allow`` marker or pyproject entry that acknowledged it (then it never fails the run)
    allowed: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def acknowledged(self, reason: str) -> Finding:
        return replace(self, allowed=reason)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "database": self.database, "revision": self.revision,
                "message": self.message, "source": self.source, "file": self.file, "line": self.line,
                "table": self.table, "statement": self.statement, "allowed": self.allowed,
                "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(rule=data["rule"], severity=data["severity"], database=data["database"],
                   revision=data["revision"], message=data["message"], source=data["source"],
                   file=data.get("file"), line=data.get("line"), table=data.get("table"),
                   statement=data.get("statement"), allowed=data.get("allowed"),
                   details=dict(data.get("details") or {}))
