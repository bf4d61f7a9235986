"""What every check function receives, and the one way a check turns differences into a verdict."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa

from ..chain.app_env import AppEnv
from ..config import IgnoreRule
from ..chain.history import Revision
from ..results import FAILED, PASSED, CheckResult
from ..schema.differences import Difference
from ..schema.reflect import Snapshot, snapshot
from ..chain.steps import UP, Step, StepFailure, run_steps


@dataclass
class CheckContext:
    """What a check may use: the app and its alembic Config, the ordered revisions, the dialect backend (its
    quirk hooks), the ignore rules, and where the chain currently is."""

    env: AppEnv
    dialect: str
    backend: Any
    revisions: list[Revision]  # the revisions under test (the --from/--to window; all by default)
    heads: list[str]
    emit: Callable[[dict[str, Any]], None]
    ignore: list[IgnoreRule] = field(default_factory=list)
    all_revisions: list[Revision] = field(default_factory=list)
    reaches_head: bool = True  # the window ends at head, where the models apply
    allow_multiple_heads: bool = False
    at_head: bool = False  # at the top of the window
    at_base: bool = True
    upgrade_failed_at: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    current_check: str = ""
    #: one alembic ScriptDirectory for every step of the session (its revision map is read once)
    script: Any = None
    #: steps may share a run of env.py, each committed on its own (:func:`harness.chain.steps.run_steps`)
    together: bool = False

    def announce(self, step: Step) -> None:
        """Tell the parent which step starts, so a step that hangs can be named and stopped, and a person can
        follow the run (``upgrade 7/33``: the revision's place in the chain)."""
        order = self.state.get("order")
        if order is None:
            order = self.state["order"] = {r.revision: i for i, r in enumerate(self.all_revisions, 1)}
        self.emit({**step.to_event(), "check": self.current_check, "index": order.get(step.revision.revision, 0),
                   "total": len(self.all_revisions)})
        self.state["in_step"] = True

    def step_done(self, step: Step, seconds: float, passed: bool) -> None:
        """Tell the parent how long a step took, and for which check (the JSON report's ``steps``)."""
        self.state["in_step"] = False
        self.state["last_step"] = {"event": "step_done", "check": self.current_check, "direction": step.direction,
                                   "revision": step.revision.revision, "duration_s": round(seconds, 4),
                                   "passed": passed}
        self.emit(self.state["last_step"])

    def run_steps(self, steps: Sequence[Step], *, prepare: Callable[[Step], bool | None] | None = None,
                  between: Callable[[Step], bool | None] | None = None) -> StepFailure | None:
        """Run migration steps with this context's announcements and timings (see
        :func:`harness.chain.steps.run_steps`): ``prepare`` runs before a step is announced, ``between`` after it
        passed and was committed; either stops the walk by returning False."""
        if self.script is None:
            from alembic.script import ScriptDirectory

            self.script = ScriptDirectory.from_config(self.env.alembic_config)

        def before(step: Step) -> bool | None:
            if prepare is not None and prepare(step) is False:
                return False
            self.announce(step)
            return None

        failure = run_steps(self.env.alembic_config, steps, before, self.versions_dir, self.step_done,
                            self.script, together=self.together, between=between)
        if failure is not None and failure.step.direction == UP and "start_baseline" not in self.state:
            missing = self.missing_model_tables(failure.error)
            if missing:
                failure = replace(failure, error=f"{failure.error}; {', '.join(missing)}: a table of the models that "
                                  "no revision before this one creates, so the chain does not start from an empty "
                                  "database (an install that runs db.create_all() and `flask db stamp head`): "
                                  "check it from that baseline with --baseline create-all")
        return failure

    def missing_model_tables(self, error: str) -> list[str]:
        """The models' tables that ``error`` names and the database does not have (a chain that assumes tables
        ``create_all`` made); ``[]`` when there are none, or when the database cannot say."""
        if not any(marker in error for marker in self.backend.missing_table_markers):
            return []
        try:
            named = [t.name for t in self.env.metadata().sorted_tables
                     if re.search(rf"(?<![\w$]){re.escape(t.name)}(?![\w$])", error)]
            if not named:
                return []
            with self.env.engine().connect() as conn:
                present = set(sa.inspect(conn).get_table_names())
        except Exception:  # noqa: BLE001 - only a hint: the failure stands as it is without it
            return []
        return [name for name in named if name not in present]

    @property
    def versions_dir(self) -> tuple[str, ...]:
        """Every directory holding revision files (``versions/``, or each of alembic's ``version_locations``)."""
        return tuple(sorted({os.path.dirname(os.path.abspath(r.path)) for r in self.all_revisions}))

    def snapshot(self) -> Snapshot:
        """The app's scratch database as it is now (tables and every other object the backend lists)."""
        with self.env.engine().connect() as conn:
            return snapshot(conn, self.backend, self.state.setdefault("reflected", {}))

    def catalogue(self) -> tuple[Any, ...] | None:
        """The scratch database's state as its catalogue gives it, comparable with ``==``: each table's
        fingerprint and the other objects by kind. Two equal ones are two equal :meth:`snapshot` s (a snapshot
        reuses a table's reflection while its fingerprint is the same), read without reflecting anything.
        ``None`` where that does not hold or would not pay: the dialect's fingerprints are not canonical
        (:attr:`harness.backends.Backend.fingerprints_are_canonical`), or it gave none this time; and when the
        session asked for every state reflected (``eager_snapshots``, after a catalogue that differed)."""
        if self.state.get("eager_snapshots") or not self.backend.fingerprints_are_canonical:
            return None
        with self.env.engine().connect() as conn:
            found = self.backend.catalogue(conn)
        if found.fingerprints is None:
            return None
        return (tuple(sorted(found.fingerprints.items())),
                tuple(sorted((kind, tuple(sorted(names))) for kind, names in found.objects.items())))

    def rules_for(self, check: str) -> list[IgnoreRule]:
        """Ignore rules for ``check`` on this database, including the dialect's self-made tables."""
        implicit = [IgnoreRule(reason=reason, table=table) for table, reason in self.backend.implicit_tables.items()]
        return [r for r in implicit + self.ignore if r.applies_to(check, self.dialect)]

    def verdict(self, check: str, differences: Iterable[Difference | dict[str, Any]], passed: str, failed: str,
                revision: str | None = None) -> CheckResult:
        """``failed`` if any difference survives the ignore rules; ignored ones are listed with their reason."""
        rules = [r for r in self.rules_for(check) if not r.whole_check]
        kept, ignored = [], []
        for difference in differences:
            data = difference.to_dict() if isinstance(difference, Difference) else difference
            rule = next((r for r in rules if r.matches(data)), None)
            if rule:
                ignored.append({**data, "reason": rule.reason})
            else:
                kept.append(data)
        note = f" ({len(ignored)} ignored)" if ignored else ""
        if kept:
            return CheckResult(check, FAILED, revision, f"{len(kept)} {failed}{note}", tuple(kept), tuple(ignored))
        return CheckResult(check, PASSED, None, passed + note, (), tuple(ignored))
