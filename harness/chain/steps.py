"""Run a migration chain one revision at a time and say exactly which step failed, and why."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import time
import traceback
from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import sqlalchemy as sa
if TYPE_CHECKING:  # alembic is imported where steps run (the worker), not by the parent, which needs only names
    from alembic.script import ScriptDirectory

from ..versions import downgrade_revs
from .history import Revision

UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Step:
    """Apply (``up``) or revert (``down``) one revision; ``target`` is what alembic is asked to reach. ``several``:
    the step applies every revision below ``target`` not applied yet, in one transaction, as ``flask db upgrade``
    does (:func:`upgrade_at_once`)."""

    direction: str
    revision: Revision
    target: str
    several: bool = False

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
    return [Step(UP, r, r.revision, several=True) for r in revisions if r.revision not in parents]


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
    unnamed = unnamed_constraint_drop(exc, where)
    if unnamed is not None:
        own = "" if isinstance(exc, AssertionError) or "name" in text else f"; the database's error: {text}"
        return unnamed + own
    return f"{type(exc).__name__}: {text}{where}"


def unnamed_constraint_drop(exc: BaseException, where: str = "") -> str | None:
    """What to say when a step failed because it drops a constraint by the name ``None``, else None.

    An autogenerated downgrade of a constraint the models left unnamed reads ``op.drop_constraint(None, ...)``:
    PostgreSQL's compiler says "it has no name", MySQL's alembic dialect raises a bare ``AssertionError``, and
    batch mode on SQLite "Constraint must have a name". The user needs the same answer on every database: which
    drop, and how to give the constraint a name the downgrade can use.
    """
    batch = isinstance(exc, ValueError) and str(exc) == "Constraint must have a name"  # alembic's batch mode
    found, table, adding = batch, None, False
    tb = exc.__traceback__
    while tb is not None:
        names, function = tb.tb_frame.f_locals, tb.tb_frame.f_code.co_name
        if batch:
            adding = function == "add_constraint"  # the frame that raised is the last one
        elif function in ("drop_constraint", "batch_drop_constraint") and not found:
            if "constraint_name" in names and names["constraint_name"] is None:  # op.drop_constraint(None, ...)
                found, table = True, names.get("table_name")
            elif "const" in names and _unnamed(names["const"]):  # a batch's drop, run when the batch ends
                found, table = True, getattr(getattr(names["const"], "table", None), "name", None)
        tb = tb.tb_next
    if not found:
        return None
    if adding:
        what = (f"a constraint created without a name{where} cannot be added in batch mode (SQLite copies the "
                "table, which needs every constraint's name): it has no name")
    else:
        call = f"drop_constraint(None, {table!r})" if table else "drop_constraint(None)"
        what = (f"{call}{where} cannot drop the constraint: it has no name (it was created unnamed, so the "
                "database chose its own)")
    return (f"{what}; name the constraint where the chain creates it (e.g. op.create_unique_constraint("
            "'uq_users_email', ...)) and drop it by that name, or give the app's MetaData a naming convention "
            "(SQLAlchemy(metadata=MetaData(naming_convention={...}))) so that autogenerate names every constraint")


def _unnamed(constraint: Any) -> bool:
    name = getattr(constraint, "name", "")
    return name is None or type(name).__name__ == "_NoneName"  # SQLAlchemy's "no name given" marker


def apply_step(config: Any, step: Step, script: ScriptDirectory | None = None) -> None:
    """``alembic upgrade <target>`` / ``downgrade <target>``, as :mod:`alembic.command` does it, but with one
    :class:`ScriptDirectory` for the whole run: ``command.upgrade`` builds a new one every call and loads every
    revision file again, which makes a step-by-step walk over N revisions cost N² file loads."""
    from alembic.runtime.environment import EnvironmentContext

    if script is None or not hasattr(script, "_upgrade_revs"):  # pragma: no cover - every alembic 1.x has it
        from alembic import command

        (command.upgrade if step.direction == UP else command.downgrade)(config, step.target)
        return
    def migrations(current: Any, context: Any) -> Any:
        return migration_steps(script, step, current)

    with EnvironmentContext(config, script, fn=migrations, as_sql=False, starting_rev=None,
                            destination_rev=step.target, tag=None):
        run_env(script)


def migration_steps(script: ScriptDirectory, step: Step, current: Any) -> list[Any]:
    """alembic's migration steps that take the database from its ``current`` heads through ``step``. A revision
    with one parent and no ``depends_on``, applied right from its parent or reverted right from itself, is one
    step of its own, built here as alembic builds it; alembic would walk the revision map to find that out (about
    0.5 ms a step on a 100-revision chain, and a check walks five steps per revision). Anything else (a merge, a
    branch point, other heads in the version table, several revisions at once) is alembic's to work out."""
    heads = tuple(current or ())
    revision = None if step.several else script.revision_map.get_revision(step.revision.revision)
    if revision is not None and not revision.dependencies and not isinstance(revision.down_revision, (tuple, list)):
        from alembic.runtime.migration import MigrationStep

        parent = revision.down_revision
        if step.direction == UP and step.target == revision.revision and heads == ((parent,) if parent else ()):
            return [MigrationStep.upgrade_from_script(script.revision_map, revision)]
        if step.direction != UP and heads == (revision.revision,):
            return [MigrationStep.downgrade_from_script(script.revision_map, revision)]
    if step.direction == UP:
        return list(script._upgrade_revs(step.target, current))
    return downgrade_revs(script, step.target, step.revision.revision, current)


class _CompiledOnce(importlib.machinery.SourceFileLoader):
    """A source loader that compiles a file once per process (per size and modification time): alembic runs
    ``env.py`` afresh at every command, and where no bytecode can be cached (``PYTHONDONTWRITEBYTECODE=1``, common
    in CI images; a read-only checkout) it was compiled again at every run (a walk's first step, and every step of
    an env.py that keeps a run per step: :class:`_Walk`)."""

    codes: ClassVar[dict[tuple[str, int, int], CodeType]] = {}

    def get_code(self, fullname: str) -> CodeType:
        stat = os.stat(self.path)
        key = (self.path, stat.st_mtime_ns, stat.st_size)
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = super().get_code(fullname)  # its bytecode cache when there is one
        return code


def run_env(script: ScriptDirectory) -> None:
    """``script.run_env()``: ``env.py`` run as a new module, exactly as alembic loads it (module name ``env_py``,
    not in ``sys.modules``), from a code object compiled once (:class:`_CompiledOnce`)."""
    path = os.path.join(script.dir, "env.py")
    if not os.path.isfile(path):  # only a compiled env.pyc: alembic's own loading finds it
        script.run_env()
        return
    spec = importlib.util.spec_from_file_location("env_py", path, loader=_CompiledOnce("env_py", path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def run_steps(config: Any, steps: Sequence[Step], before_step: Callable[[Step], bool | None],
              versions_dir: str | Sequence[str] | None = None,
              after_step: Callable[[Step, float, bool], None] | None = None,
              script: ScriptDirectory | None = None, *, together: bool = False,
              between: Callable[[Step], bool | None] | None = None) -> StepFailure | None:
    """Run ``steps`` through alembic (one ``script`` directory for all, see :func:`apply_step`); stop at the first
    failure and return it. ``before_step`` is called before each step, ``after_step`` gets its wall time and whether
    it passed, ``between`` is called once it has passed and is committed; either callback stops the walk (no
    failure) by returning False.

    ``together``: where env.py allows it, the steps after the first run in one run of env.py, each in a
    transaction of its own (:class:`_Walk`): what the step-by-step runs would do, less one env.py run, engine
    checkout and version-table lookup per step. Only for steps of one revision each (:func:`upgrade_steps`,
    :func:`downgrade_steps`): a step of ``several`` (:func:`upgrade_at_once`) runs them in one transaction, as
    ``flask db upgrade`` does, which a transaction per migration would not.
    """
    together = (together and script is not None and hasattr(script, "_upgrade_revs")
                and not any(step.several for step in steps))
    walk = _Walk(list(steps), before_step, after_step, between, together)
    while walk.pending and not walk.stopped:
        first = walk.pending[0]
        if before_step(first) is False:
            break
        walk.begin(first)
        try:
            if walk.together:
                walk.run_env(config, script)  # type: ignore[arg-type]
            else:
                apply_step(config, first, script)
        except KeyboardInterrupt:
            raise
        except _HookError as hook:  # the caller's own callback, between two committed steps
            raise hook.error from None
        except BaseException as exc:  # SystemExit too: some env.py files call sys.exit on errors
            step = walk.current or first
            if after_step:
                after_step(step, time.monotonic() - walk.started, False)
            return StepFailure(step, describe_error(exc, versions_dir))
        if walk.current is not None:  # a step of its own (or env.py ran no migration): done once env.py returned
            walk.finish()
    return None


class _HookError(Exception):
    """A callback of the caller raised between steps: its own exception, not the migration's."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Walk:
    """The steps of one :func:`run_steps` call and where they are.

    The first run of env.py applies one step, as alone. It tells whether env.py runs its migrations once, on a
    connection that is not inside a transaction of env.py's own (Flask-Migrate's env.py: ``connect()``, then
    ``begin_transaction()``). If so, every later run applies as many steps as are left, asking alembic for a
    transaction per migration (``transaction_per_migration``): each step commits before the next starts, so every
    step runs exactly as in a run of its own: a later one cannot rescue an earlier one inside a shared
    transaction, and ``between`` sees each step's committed schema. Otherwise (a multi-database env.py, which
    begins a transaction per engine; an env.py that calls ``run_migrations`` twice, or sends SQL of its own before
    it, such as a ``SET LOCAL``) every step stays a run of its own.
    """

    def __init__(self, pending: list[Step], before_step: Callable[[Step], bool | None],
                 after_step: Callable[[Step, float, bool], None] | None,
                 between: Callable[[Step], bool | None] | None, together: bool) -> None:
        self.pending = pending
        self.before_step, self.after_step, self.between = before_step, after_step, between
        self.together = together
        self.batch = False  # this run of env.py applies every step left
        self.current: Step | None = None
        self.started = 0.0
        self.stopped = False
        self.heads: tuple[str, ...] = ()  # the database's heads after the last migration step (in a run)

    def begin(self, step: Step) -> None:
        self.current, self.started = step, time.monotonic()

    def finish(self) -> bool:
        """The current step passed (and is committed): tell the caller; False when ``between`` stops the walk."""
        step, self.current = self.current, None
        assert step is not None
        self.pending.pop(0)
        if self.after_step:
            self.after_step(step, time.monotonic() - self.started, True)
        if self.between is not None and self.between(step) is False:
            self.stopped = True
        return not self.stopped

    def run_env(self, config: Any, script: ScriptDirectory) -> None:
        """One run of env.py: the first step left (its ``before_step`` called by the caller), and then, where
        env.py allows it, every other step left."""
        from alembic.runtime.environment import EnvironmentContext

        walk, first = self, self.pending[0]
        state = {"calls": 0}

        environment = EnvironmentContext(config, script, fn=lambda heads, context: migrations(heads, context),
                                         as_sql=False, starting_rev=None, destination_rev=first.target,
                                         tag=None)

        def configure(*args: Any, **kw: Any) -> None:
            """env.py's ``context.configure``, noted (alembic's module proxy calls the instance's method): a
            transaction per migration once the walk goes on in one run, and the heads each step leaves."""
            state["configures"] = state.get("configures", 0) + 1
            if walk.batch:
                kw["transaction_per_migration"] = True
            kw["on_version_apply"] = (*_as_tuple(kw.get("on_version_apply")), walk._applied)
            EnvironmentContext.configure(environment, *args, **kw)
            connection = getattr(environment.get_context(), "connection", None)
            state["own_transaction"] = bool(args) or connection is None or connection.in_transaction()
            if connection is not None and "connection" not in state:
                state["connection"] = connection
                sa.event.listen(connection, "before_cursor_execute", own_statement)

        def own_statement(*_: Any) -> None:
            """A statement env.py sends itself before its migrations (``SET LOCAL``, a lock): it holds for one
            transaction, or it must come before each step, so the steps keep a run of their own."""
            if not state.get("migrating"):
                state["own_sql"] = True

        def run_migrations(**kw: Any) -> None:
            state["migrating"] = True
            EnvironmentContext.run_migrations(environment, **kw)

        environment.configure = configure  # type: ignore[method-assign]
        environment.run_migrations = run_migrations  # type: ignore[method-assign]

        def migrations(heads: Any, context: Any) -> Any:
            state["calls"] += 1
            if state["calls"] > 1:  # env.py runs its migrations again (another engine): the first step, as alone
                return migration_steps(script, first, heads)
            return walk._steps(script, heads, state)

        self.heads = ()
        try:
            with environment:
                run_env(script)
        finally:
            if "connection" in state:
                try:
                    sa.event.remove(state["connection"], "before_cursor_execute", own_statement)
                except Exception:  # noqa: BLE001 - a connection env.py closed: its listeners went with it
                    pass
        # go on in one run from now on only if env.py ran its migrations once, outside a transaction of its own,
        # and sent no statement of its own before them
        self.batch = _shareable(state)

    def _applied(self, *, heads: Any, **_: Any) -> None:
        """alembic's ``on_version_apply``: the heads after a migration step."""
        self.heads = tuple(heads)

    def _steps(self, script: ScriptDirectory, heads: Any, state: dict[str, Any]) -> Any:
        """alembic's ``fn`` in this run: the first step left; then, when this run commits each step, every step
        left, from the heads each one leaves. The callbacks run between two steps, once the one before is
        committed (alembic asks for the next step after its transaction ended)."""
        batch = self.batch and _shareable(state)
        yield from migration_steps(script, self.pending[0], heads)
        if not batch:
            return  # finished by the caller once env.py returned (and committed)
        while True:
            try:
                going_on = self.finish()
                if not going_on or not self.pending:
                    return
                step = self.pending[0]
                if self.before_step(step) is False:
                    self.stopped = True
                    return
            except Exception as exc:  # noqa: BLE001 - the caller's, re-raised as it is by run_steps
                raise _HookError(exc) from exc
            self.begin(step)
            yield from migration_steps(script, step, self.heads)


def _shareable(state: dict[str, Any]) -> bool:
    """Whether a run of env.py (what it did so far: ``state``) lets its steps share one run: it configured alembic
    once, ran its migrations once, on a connection outside a transaction of its own, and sent no SQL of its own
    before them."""
    return (state["calls"] <= 1 and state.get("configures") == 1 and not state.get("own_transaction")
            and not state.get("own_sql"))


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)
