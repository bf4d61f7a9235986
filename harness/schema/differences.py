"""One schema difference, structured for the JSON report and readable in one line."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_WHERE = {"missing": "in the models but not in the database", "extra": "in the database but not in the models",
          "left_behind": "still in the database after downgrade to base"}


@dataclass(frozen=True)
class Difference:
    """``object`` (table, column, index, unique_constraint, foreign_key, check_constraint, primary_key, enum,
    enum_type, sequence, view…), where it is, which ``aspect`` differs, and each side's value."""

    object: str
    table: str | None
    name: str | None
    aspect: str
    model: Any = None
    database: Any = None
    detail: str = ""

    @property
    def text(self) -> str:
        """A line a user can act on without opening a database."""
        subject = subject_text(self.object, self.table, self.name, self.detail)
        if self.aspect in _WHERE:
            return f"{subject}: {_WHERE[self.aspect]}"
        aspect = self.aspect.replace("_", " ")
        show = _show_nullable if self.aspect == "nullable" else _show
        return f"{subject}: {aspect} differs: models {show(self.model)}, database {show(self.database)}"

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "table": self.table, "name": self.name, "aspect": self.aspect,
                "model": _plain(self.model), "database": _plain(self.database), "text": self.text}


def subject_text(object_: str, table: str | None, name: str | None, detail: str = "") -> str:
    """What a difference is about, as its line starts: ``column users.name``, ``index ix_a on posts (a)``."""
    subject = f"{object_.replace('_', ' ')} "
    if object_ == "table":
        subject += f"{table}"
    elif object_ == "column":
        subject += f"{table}.{name}"
    else:
        subject += f"{name}" + (f" on {table}" if table else "")
    return subject + (f" {detail}" if detail else "")


def _show_nullable(value: Any) -> str:
    return "NULL" if value else "NOT NULL"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if value is None or isinstance(value, (str, int, float, bool, list)):
        return value
    return str(value)
