"""Worker modes of ``compat`` (:data:`harness.worker.EXTRA_MODES`), each in a release's own app and interpreter:

* ``compat-prepare`` (the previous release): its own migrations to its head, rows in every table (the ``data``
  check's generator), then its models exercised;
* ``compat-exercise`` (either release): its models exercised on the database as it is;
* ``compat-step`` (the new release): its models exercised (``exercise_before``), one new revision applied, its
  models exercised again.

Each emits ``{"event": "exercise", "release", "at", "failures", "operations"}``; a step that fails emits
``{"event": "compat_step_failed", "revision", "error"}``.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from ..backends import get_backend
from ..checks import CheckContext
from ..datagen import fill_database
from ..steps import UP, Step, upgrade_steps
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


def _inside(path: str, roots: Any) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root + os.sep) for root in roots)


def _environment_roots() -> list[str]:
    """The interpreter's own directories (a ``.venv`` inside the working tree is not the working tree's code)."""
    return [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]


def keep_off_path(forbidden: Any, replacement: str | None = None) -> list[str]:
    """Drop from ``sys.path`` every entry inside a ``forbidden`` directory (the working tree, when the previous
    release runs: an editable install's ``.pth`` or a ``PYTHONPATH`` would import the new code), mapping it to the
    same place under ``replacement`` (the previous release's checkout) when that exists; the entries dropped."""
    roots = [os.path.realpath(r) for r in forbidden]
    own = _environment_roots() + ([os.path.realpath(replacement)] if replacement else [])
    dropped: list[str] = []
    kept: list[str] = []
    for entry in sys.path:
        if entry and _inside(entry, roots) and not _inside(entry, own):
            dropped.append(entry)
            real = os.path.realpath(entry)
            root = next(r for r in roots if real == r or real.startswith(r + os.sep))
            if replacement:
                mapped = os.path.join(replacement, os.path.relpath(real, root))
                if os.path.isdir(mapped) and mapped not in kept:
                    kept.append(mapped)
            continue
        kept.append(entry)
    sys.path[:] = kept
    return dropped


def foreign_modules(forbidden: Any, allowed: str | None = None) -> list[str]:
    """Modules this process imported from a ``forbidden`` directory (the harness's own code and the interpreter's
    environment aside): proof that the previous release's worker ran only the previous release's code."""
    if not forbidden:
        return []
    roots = [os.path.realpath(r) for r in forbidden]
    harness_dir = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    own = _environment_roots() + [harness_dir] + ([os.path.realpath(allowed)] if allowed else [])
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and _inside(path, roots) and not _inside(path, own):
            found.append(f"{name} ({path})")
    return sorted(found)
