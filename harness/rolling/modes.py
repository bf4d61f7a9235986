"""Worker modes of ``compat`` (:data:`harness.run.worker.EXTRA_MODES`), each in a release's own app and interpreter:

* ``compat-prepare`` (the previous release): its own migrations to its head, rows in every table (the ``data``
  check's generator), then its models exercised;
* ``compat-exercise`` (either release): its models exercised on the database as it is;
* ``compat-step`` (the new release): its models exercised (``exercise_before``), one new revision applied, its
  models exercised again.

Each emits ``{"event": "exercise", "release", "at", "failures", "operations"}``; a step that fails emits
``{"event": "compat_step_failed", "revision", "error"}``.
"""
from __future__ import annotations

from typing import Any, Callable

from ..backends import get_backend
from ..checks import CheckContext
from ..datagen import fill_database
from ..chain.steps import UP, Step, upgrade_steps
from ..chain.paths import foreign_modules
from .exercise import exercise, mapped_classes


def run_mode(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
             emit: Callable[[dict[str, Any]], None]) -> None:
    release = spec["release"]
    ctx = CheckContext(env=env, dialect=spec["dialect"], backend=get_backend(spec["dialect"]), revisions=revisions,
                       heads=heads, emit=emit, all_revisions=revisions)
    ctx.current_check = "compat"
    engine = env.engine()
    if spec["mode"] == "compat-prepare":
        failure = ctx.run_steps(upgrade_steps(revisions))
        if failure:
            emit({"event": "compat_step_failed", "revision": failure.step.revision.revision,
                  "error": failure.error, "previous": True})
            return
        with engine.connect() as conn:
            filled = fill_database(conn, int(spec.get("rows", 5)), seed=7)
        with engine.begin() as conn:
            valid_discriminators(env.db, conn)
        emit({"event": "compat_filled", "inserted": filled.inserted, "skipped": filled.skipped})
    if spec["mode"] == "compat-step":
        if spec.get("exercise_before"):
            _emit_exercise(env, engine, release, spec["before"], emit)
        target = next(r for r in revisions if r.revision == spec["apply"])
        failure = ctx.run_steps([Step(UP, target, target.revision)])
        if failure:
            emit({"event": "compat_step_failed", "revision": target.revision, "error": failure.error})
            return
    _emit_exercise(env, engine, release, spec.get("at", ""), emit)
    foreign = foreign_modules(spec.get("forbid_roots", ()), spec.get("replacement_root"))
    if foreign:
        emit({"event": "foreign_modules", "modules": foreign})


def valid_discriminators(db: Any, conn: Any) -> None:
    """Generated rows hold random text in a polymorphic discriminator (``users.type``), which no release could
    load ("No such polymorphic_identity"): set each such row to the identity of the class mapped on that table."""
    import sqlalchemy as sa

    for cls in mapped_classes(db):
        mapper = sa.inspect(cls)
        column = mapper.polymorphic_on
        if not isinstance(column, sa.Column) or mapper.inherits is not None or not mapper.polymorphic_map:
            continue
        known = list(mapper.polymorphic_map)
        identity = mapper.polymorphic_identity if mapper.polymorphic_identity is not None else known[0]
        conn.execute(sa.update(column.table).where(sa.or_(column.is_(None), sa.not_(column.in_(known))))
                     .values({column.name: identity}))


def _emit_exercise(env: Any, engine: Any, release: str, at: str, emit: Callable[[dict[str, Any]], None]) -> None:
    failures, count = exercise(env.db, engine, release)
    emit({"event": "exercise", "release": release, "at": at, "operations": count,
          "failures": [f.to_dict() for f in failures]})
