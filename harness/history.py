"""The revision graph of a migrations directory, flattened base → head, as plain records."""
from __future__ import annotations

from dataclasses import dataclass

from alembic.script import Script, ScriptDirectory


@dataclass(frozen=True)
class Revision:
    """One migration script: its id, its parent(s) and its message."""

    revision: str
    down_revisions: tuple[str, ...]
    message: str
    path: str

    @property
    def label(self) -> str:
        """``<id> (<message>)``: how a report names a revision."""
        return f"{self.revision} ({self.message})" if self.message else self.revision

    def to_dict(self) -> dict[str, object]:
        return {"revision": self.revision, "down_revisions": list(self.down_revisions),
                "message": self.message, "path": self.path}

    @classmethod
    def from_dict(cls, data: dict) -> Revision:
        return cls(data["revision"], tuple(data["down_revisions"]), data["message"], data["path"])


def _down(script: Script) -> tuple[str, ...]:
    down = script.down_revision
    if down is None:
        return ()
    return (down,) if isinstance(down, str) else tuple(down)


def ordered_revisions(script_dir: ScriptDirectory) -> list[Revision]:
    """Every revision, parents before children (base first, heads last).

    Loading the scripts is what surfaces a syntax error, a ``down_revision`` that names no revision, or a cycle:
    the caller turns those exceptions into a :class:`~harness.errors.MigrationsError`.
    """
    scripts = list(script_dir.walk_revisions("base", "heads"))
    scripts.reverse()  # walk_revisions goes from the heads down
    return [Revision(s.revision, _down(s), (s.doc or "").strip().splitlines()[0] if s.doc else "", s.path)
            for s in scripts]
