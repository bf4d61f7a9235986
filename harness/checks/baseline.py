"""Chains that start from ``db.create_all()`` + ``flask db stamp head`` instead of an empty database.

Many teams install an app by creating its tables from the models and stamping the database at head; their first
revisions then assume tables they never create (an empty base revision, one that alters an existing table, a
squashed history). Run from an empty database such a chain fails at once, which is true and useless. From the
baseline the team really uses, what can be checked is the window above it: each revision reverted one at a
time from head, applied back one at a time, the stairway on that window, the models against the result.
"""
from __future__ import annotations

from typing import Any, Callable


from ..results import FAILED, PASSED, SKIPPED, CheckResult
from ..chain.steps import downgrade_steps, upgrade_steps
from .context import CheckContext

#: ``--baseline`` values: how the scratch database is built before the window is checked
BASELINES: dict[str, str] = {"create-all": "db.create_all() stamped at head"}
#: the key in ``CheckContext.state`` that says the session started from a baseline
STATE_KEY = "start_baseline"


def start_from_baseline(ctx: CheckContext, checks: list[str], kind: str,
                        emit: Callable[[dict[str, Any]], None]) -> list[str]:
    """Build the baseline on the scratch database (the app's own ``db.create_all()``, then ``alembic stamp``
    at head), and return the session's checks in the order they run from there: ``downgrade`` before
    ``upgrade`` (the database starts at head). A session that does not check the downgrade (the stairway, the
    data run, or ``--checks upgrade``) reverts the window first, unchecked but reported if it fails."""
    ctx.state[STATE_KEY] = kind
    ctx.env.db.create_all()
    from alembic import command

    command.stamp(ctx.env.alembic_config, "heads")
    ctx.at_head, ctx.at_base = True, False
    moving = [c for c in checks if c != "single_head"]
    if "downgrade" in moving:  # downgrade first, then up again: the chain session
        rest = [c for c in moving if c not in ("upgrade", "downgrade")]
        return [c for c in checks if c == "single_head"] + ["downgrade"] + (
            ["upgrade"] if "upgrade" in checks else []) + rest
    if moving:
        ctx.current_check = moving[0]
        failure = _revert(ctx)
        if failure is not None:  # nothing of the window could be reverted: the first check says why
            emit({"event": "check", **failure.to_dict()})
            return [c for c in checks if c == "single_head"]
    return checks


def _revert(ctx: CheckContext) -> CheckResult | None:
    """Revert the window one revision at a time; a revision that cannot be reverted ends the window there."""
    failure = ctx.run_steps(downgrade_steps(ctx.revisions))
    if failure is None:
        ctx.at_head, ctx.at_base = False, True
        return None
    reverted = _above(ctx, failure.step.revision.revision)
    if not reverted:
        return CheckResult(ctx.current_check, FAILED, failure.step.revision.revision,
                           f"from {BASELINES[ctx.state[STATE_KEY]]}: {failure.describe(ctx.dialect)}")
    ctx.revisions = reverted
    ctx.at_head, ctx.at_base = False, True
    ctx.state["baseline_bottom"] = failure.step.revision.revision
    ctx.state["baseline_stop"] = (f"the window is the {len(reverted)} revision(s) reverted before "
                                  f"{failure.step.revision.revision}: {failure.describe(ctx.dialect)}")
    return None


def _above(ctx: CheckContext, revision: str) -> list[Any]:
    """The revisions of the window after ``revision``: those a head-first walk reverted before it failed."""
    names = [r.revision for r in ctx.revisions]
    return list(ctx.revisions[names.index(revision) + 1:])


def check_baseline_downgrade(ctx: CheckContext) -> CheckResult:
    """From the baseline at head, every revision of the window reverts, one at a time.

    A team that installs with ``create_all`` + ``stamp`` still rolls back with ``flask db downgrade``: each
    revision above the baseline must revert on the schema ``create_all`` made. A revision that cannot is a
    failure (with ``--from`` it is the window's own; without it, the report says where the chain stops
    reverting, and the checks after this one run on the revisions above it)."""
    total = len(ctx.revisions)
    failure = ctx.run_steps(downgrade_steps(ctx.revisions))
    where = BASELINES[ctx.state[STATE_KEY]]
    if failure is not None:
        revision = failure.step.revision.revision
        ctx.revisions = _above(ctx, revision)
        ctx.state["baseline_bottom"] = revision
        ctx.at_head = False
        ctx.at_base = bool(ctx.revisions)  # the bottom of what did revert: upgrade checks it back up
        above = (f"; the checks after this one cover the {len(ctx.revisions)} revision(s) reverted before it (if "
                 f"{revision} and the revisions below it are what create_all replaces, --from {revision} checks "
                 "only those)" if ctx.revisions else "")
        return CheckResult("downgrade", FAILED, revision, f"from {where}: {failure.describe(ctx.dialect)}{above}")
    ctx.at_head, ctx.at_base = False, True
    bottom = ctx.revisions[0].down_revisions[0] if ctx.revisions[0].down_revisions else "base"
    return CheckResult("downgrade", PASSED, None,
                       f"from {where}: {total} revisions reverted one by one, head down to {bottom}")


def check_baseline_upgrade(ctx: CheckContext) -> CheckResult:
    """From the bottom of the reverted window, every revision applies again, one at a time, back to head: the
    upgrade a deploy runs on a database installed from the baseline and rolled back."""
    where = BASELINES[ctx.state[STATE_KEY]]
    if not ctx.at_base:
        return CheckResult("upgrade", SKIPPED, None, f"not run: no revision could be reverted from {where}")
    failure = ctx.run_steps(upgrade_steps(ctx.revisions))
    if failure:
        ctx.at_base = False
        ctx.upgrade_failed_at = failure.step.revision.revision
        return CheckResult("upgrade", FAILED, failure.step.revision.revision, f"from {where}, reverted: "
                           f"{failure.describe(ctx.dialect)}")
    ctx.at_head, ctx.at_base = True, False
    bottom = ctx.state.get("baseline_bottom") or (
        ctx.revisions[0].down_revisions[0] if ctx.revisions[0].down_revisions else "base")
    stop = ctx.state.get("baseline_stop")
    return CheckResult("upgrade", PASSED, None, f"from {where}, reverted to {bottom}: {len(ctx.revisions)} "
                       "revisions applied one by one back to head" + (f" ({stop})" if stop else ""))


def leaves_no_trace_from_baseline(ctx: CheckContext) -> CheckResult | None:
    """``leaves_no_trace`` asks what the chain leaves on an empty database; from a baseline there is none."""
    if STATE_KEY not in ctx.state:
        return None
    return CheckResult("leaves_no_trace", SKIPPED, None, f"not run: the chain starts from "
                       f"{BASELINES[ctx.state[STATE_KEY]]}, not from an empty database")


__all__ = ["BASELINES", "check_baseline_downgrade", "check_baseline_upgrade", "leaves_no_trace_from_baseline",
           "start_from_baseline"]
