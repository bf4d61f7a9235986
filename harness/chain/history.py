"""The revision graph of a migrations directory, flattened base → head, as plain records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # alembic is imported where it runs (the worker), not by the parent for these names
    from alembic.script import Script, ScriptDirectory

from ..errors import MigrationsError


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


def resolve(revisions: list[Revision], ref: str) -> Revision:
    """The revision ``ref`` names: an id or a unique prefix of one (as alembic accepts)."""
    exact = [r for r in revisions if r.revision == ref]
    matches = exact or [r for r in revisions if r.revision.startswith(ref)]
    if len(matches) != 1:
        known = ", ".join(r.revision for r in revisions[-5:])
        raise MigrationsError(f"revision {ref!r} is {'ambiguous' if matches else 'not in the history'}"
                              f" (latest: {known})")
    return matches[0]


def ancestors(revisions: list[Revision], revision: str) -> set[str]:
    """``revision`` and everything it depends on."""
    parents = {r.revision: r.down_revisions for r in revisions}
    seen: set[str] = set()
    todo = [revision]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(parents.get(current, ()))
    return seen


@dataclass(frozen=True)
class Window:
    """The part of the chain a run tests: ``before`` is applied first (not checked), ``revisions`` are tested."""

    before: list[Revision]
    revisions: list[Revision]
    reaches_head: bool


def window(revisions: list[Revision], heads: list[str], start: str | None, end: str | None) -> Window:
    """Revisions after ``start`` (exclusive) up to ``end`` (inclusive); the whole chain without them."""
    upto = ancestors(revisions, resolve(revisions, end).revision) if end else {r.revision for r in revisions}
    below: set[str] = set()
    if start:
        first = resolve(revisions, start).revision
        if first not in upto:
            raise MigrationsError(f"--from {start} is not an ancestor of --to {end or 'head'}")
        below = ancestors(revisions, first)
    tested = [r for r in revisions if r.revision in upto and r.revision not in below]
    if not tested:
        raise MigrationsError(f"no revision between --from {start} and --to {end}")
    before = [r for r in revisions if r.revision in below]
    reaches_head = all(h in upto for h in heads)
    return Window(before=before, revisions=tested, reaches_head=reaches_head)
