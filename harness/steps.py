"""Run a migration chain one revision at a time and say exactly which step failed, and why."""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from alembic import command
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

from .history import Revision

UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Step:
    """Apply (``up``) or revert (``down``) one revision; ``target`` is what alembic is asked to reach."""

    direction: str
    revision: Revision
    target: str

    @property
    def verb(self) -> str:
        return "upgrade" if self.direction == UP else "downgrade"

    @property
    def phrase(self) -> str:
        """``upgrade to <rev> (<message>)``, or ``downgrade of <rev> (<message>) to <parent>``: a downgrade step
        reverts the revision it names (``flask db downgrade <rev>`` would revert only what is above it)."""
        return step_phrase(self.direction, self.revision.label, self.revision.down_revisions)

    def to_event(self) -> dict[str, str]:
        return {"event": "step", "direction": self.direction, "revision": self.revision.revision,
                "message": self.revision.message, "parents": list(self.revision.down_revisions)}


@dataclass(frozen=True)
class StepFailure:
    """A step that raised: the step, and the database's (or the migration's) own error."""

    step: Step
    error: str

    def describe(self, dialect: str) -> str:
        return f"{self.step.phrase} failed on {dialect}: {self.error}"


def step_phrase(direction: str, label: str, parents: Sequence[str]) -> str:
    if direction == UP:
        return f"upgrade to {label}"
    return f"downgrade of {label} to {', '.join(parents) or 'base'}"


def upgrade_steps(revisions: Sequence[Revision]) -> list[Step]:
    """base → head, one revision at a time (parents always before children)."""
    return [Step(UP, r, r.revision) for r in revisions]


def upgrade_at_once(revisions: Sequence[Revision]) -> list[Step]:
    """base → the top of ``revisions`` in one go: one alembic upgrade per head of ``revisions`` (a revision none of
    the others names as a parent), as ``flask db upgrade`` runs it."""
    parents = {p for r in revisions for p in r.down_revisions}
    return [Step(UP, r, r.revision) for r in revisions if r.revision not in parents]


def downgrade_steps(revisions: Sequence[Revision]) -> list[Step]:
    """head → base, one revision at a time: each step reverts exactly one revision.

    ``<rev>@-1`` steps back along that revision's own branch only: with two heads, ``downgrade <parent>`` (or
    ``<rev>-1``) would take the other branch down too. A merge revision has no single step back (alembic
    answers ``Ambiguous walk`` to ``<merge>@-1``, and to ``flask db downgrade`` at a merge head): its step is
    ``downgrade <first parent>``, which reverts exactly the merge and leaves both parents as heads.
    """
    return [Step(DOWN, r, f"{r.revision}@-1" if len(r.down_revisions) <= 1 else r.down_revisions[0])
            for r in reversed(revisions)]


def describe_error(exc: BaseException, versions_dir: str | Sequence[str] | None = None) -> str:
    """The database's own error (and the failing SQL), or a Python error with its place in the migration file."""
    if isinstance(exc, sa.exc.StatementError):
        orig = exc.orig if exc.orig is not None else exc
        text = " ".join(str(orig).split())
        statement = " ".join(str(exc.statement or "").split())
        if len(statement) > 300:
            statement = statement[:297] + "..."
        return f"{type(orig).__name__}: {text}" + (f" [SQL: {statement}]" if statement else "")
    text = " ".join(str(exc).split()) or type(exc).__name__
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if versions_dir:
        places = (versions_dir,) if isinstance(versions_dir, str) else tuple(versions_dir)
        inside = [f for f in frames
                  if any(os.path.abspath(f.filename).startswith(os.path.abspath(d) + os.sep) for d in places)]
        if inside:
            where = f" (at {os.path.basename(inside[-1].filename)}:{inside[-1].lineno})"
    return f"{type(exc).__name__}: {text}{where}"


def apply_step(config: Any, step: Step, script: ScriptDirectory | None = None) -> None:
    """``alembic upgrade <target>`` / ``downgrade <target>``, as :mod:`alembic.command` does it, but with one
    :class:`ScriptDirectory` for the whole run: ``command.upgrade`` builds a new one every call and loads every
    revision file again, which makes a step-by-step walk over N revisions cost N² file loads."""
    if script is None or not hasattr(script, "_upgrade_revs"):  # pragma: no cover - every alembic 1.x has it
        (command.upgrade if step.direction == UP else command.downgrade)(config, step.target)
        return
    revs = script._upgrade_revs if step.direction == UP else script._downgrade_revs

    def migrations(current: Any, context: Any) -> Any:
        return revs(step.target, current)

    with EnvironmentContext(config, script, fn=migrations, as_sql=False, starting_rev=None,
                            destination_rev=step.target, tag=None):
        script.run_env()


def run_steps(config: Any, steps: Sequence[Step], before_step: Callable[[Step], None],
              versions_dir: str | Sequence[str] | None = None,
              after_step: Callable[[Step, float, bool], None] | None = None,
              script: ScriptDirectory | None = None) -> StepFailure | None:
    """Run ``steps`` through alembic (one ``script`` directory for all, see :func:`apply_step`); stop at the first
    failure and return it. ``after_step`` gets each step's wall time and whether it passed."""
    for step in steps:
        before_step(step)
        started = time.monotonic()
        try:
            apply_step(config, step, script)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: some env.py files call sys.exit on errors
            if after_step:
                after_step(step, time.monotonic() - started, False)
            return StepFailure(step, describe_error(exc, versions_dir))
        if after_step:
            after_step(step, time.monotonic() - started, True)
    return None
