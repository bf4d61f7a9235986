"""Worker mode ``rehearse``: run given migrations one at a time on a scratch database, counting what each touches.

Used twice by :mod:`harness.rehearse.command`, each time on its own scratch database:

* ``{"revisions": [...all of production's revisions' ancestry...], "compare_models": false}`` builds what the
  migrations say production should be (for the drift comparison);
* ``{"revisions": [...pending...], "compare_models": true}`` rehearses the pending migrations on the copy of
  production, then runs ``schema_matches_models`` as ``run`` does.

Events (besides the usual ``step`` / ``step_done`` / ``check``): ``{"event": "rehearse_step", "revision",
"message", "duration_s", "rows", "passed", "error", "operations"}`` after each step; ``operations`` are the
facts :class:`harness.rehearse.record.Recorder` kept (what the step does that existing rows can make fail), only
when the plan asks for them (``"record": true``).
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from ..backends import get_backend
from ..checks import CheckContext
from ..chain.steps import Step, run_steps, upgrade_steps
from ..config import IgnoreRule
from ..run.worker import on_scratch_database, run_check
from .record import Recorder

_VERSION_WRITE = re.compile(r"^\s*(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+[`\"]?alembic_version\b", re.IGNORECASE)


def run_mode(spec: dict[str, Any], env: Any, revisions: list[Any], heads: list[str],
             emit: Callable[[dict[str, Any]], None]) -> None:
    """Upgrade one revision at a time through ``spec["rehearse"]["revisions"]`` (ids, in order); report each."""
    plan = spec["rehearse"]
    by_id = {r.revision: r for r in revisions}
    wanted = [by_id[r] for r in plan["revisions"]]
    ctx = CheckContext(env=env, dialect=spec["dialect"], backend=get_backend(spec["dialect"]), revisions=wanted,
                       heads=heads, emit=emit, all_revisions=revisions, reaches_head=True,
                       ignore=[IgnoreRule.from_dict(r) for r in spec.get("ignore", [])])  # as run applies them
    ctx.current_check = "rehearse"
    rows = [0]

    def count_rows(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        # DDL reports -1 (or 0), an UPDATE / INSERT / DELETE the rows it changed; a SELECT (it has a result
        # description) reads rows and touches none; alembic's own alembic_version bookkeeping is not the step's
        if (ctx.state.get("in_step") and cursor.description is None and (cursor.rowcount or 0) > 0
                and not _VERSION_WRITE.match(statement)):
            rows[0] += cursor.rowcount

    scratch = env.engine().url
    recorder = Recorder(env.engine().dialect, scratch, on_scratch_database) if plan.get("record") else None

    def count_scratch_rows(conn: Any, *args: Any) -> None:
        if on_scratch_database(conn, scratch):  # whichever engine env.py migrates with (engine_from_config too)
            count_rows(conn, *args)

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", count_scratch_rows)
    started = [0.0]

    def before(step: Step) -> None:
        rows[0] = 0
        ctx.announce(step)
        if recorder:
            recorder.start_step()
        started[0] = time.monotonic()

    def after(step: Step, seconds: float, passed: bool) -> None:
        operations = recorder.stop() if recorder else []
        ctx.step_done(step, seconds, passed)
        if passed:
            emit({"event": "rehearse_step", "revision": step.revision.revision, "message": step.revision.message,
                  "duration_s": round(seconds, 4), "rows": rows[0], "passed": True, "error": None,
                  "operations": operations})

    script = ScriptDirectory.from_config(env.alembic_config)
    failure = run_steps(env.alembic_config, upgrade_steps(wanted), before, ctx.versions_dir, after, script)
    if failure:
        emit({"event": "rehearse_step", "revision": failure.step.revision.revision,
              "message": failure.step.revision.message, "duration_s": round(time.monotonic() - started[0], 4),
              "rows": rows[0], "passed": False, "error": failure.error,
              "operations": recorder.facts if recorder else []})
        return
    if plan.get("compare_models"):
        ctx.at_head = True
        ctx.current_check = "schema_matches_models"
        started_check = time.monotonic()
        result = run_check("schema_matches_models", ctx)  # a check that raises is an error verdict, as in run
        emit({"event": "check", **result.to_dict(), "duration_s": round(time.monotonic() - started_check, 3)})

