"""Multi-database apps (``flask db init --multidb``): each bind's chain checked on a scratch database of its own.

Flask-Migrate's multidb ``env.py`` opens a connection to the main database and to every bind
(``SQLALCHEMY_BINDS``), then calls ``context.run_migrations(engine_name=name)`` once per database: ``''`` for the
main one, the bind key for the others; each revision's ``upgrade(engine_name)`` dispatches to
``upgrade_<name>()``, and each database keeps its own ``alembic_version``. The harness checks one database's chain
at a time (:func:`only_engine`): the env.py runs as written, but ``run_migrations`` goes through for the database
under test only, so a defect in one bind's chain fails on that bind and revision and the others' chains are
still checked to the end.

The worker's side (the app's interpreter: standard library, SQLAlchemy, alembic and the app's Flask-SQLAlchemy
only) comes first; the parent's (which databases each run checks, how runner-made verdicts name the bind) last.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine.url import make_url

from ..results import ERROR, FAILED, SKIPPED, CheckResult

#: the engine name Flask-Migrate's multidb env.py gives the main database
MAIN_ENGINE = ""
_ONLY: list[str] = []  # the engine name whose migrations run (empty: every one, as env.py says)
_PATCHED = "_migration_harness_only_engine"


def is_multidb_env(env_py: Path) -> bool:
    """Whether ``env_py`` migrates several databases (Flask-Migrate's ``flask-multidb`` / ``aioflask-multidb``
    templates, or one written like them): it reads the binds and migrates each one."""
    text = env_py.read_text(encoding="utf-8", errors="replace")
    return "SQLALCHEMY_BINDS" in text or "bind_names" in text or "get_engine(bind" in text


@contextlib.contextmanager
def only_engine(bind: str | None) -> Iterator[None]:
    """While inside, ``EnvironmentContext.run_migrations(engine_name=...)`` runs only for ``bind`` (``None``: the
    main database, engine name ``''``); a call without ``engine_name`` (a single-database env.py) always runs."""
    from alembic.runtime.environment import EnvironmentContext

    original = EnvironmentContext.run_migrations
    if not getattr(original, _PATCHED, False):
        def run_migrations(self: Any, **kw: Any) -> None:
            if _ONLY and "engine_name" in kw and (kw["engine_name"] or MAIN_ENGINE) != _ONLY[-1]:
                return  # another database's chain: checked in a session of its own
            original(self, **kw)

        setattr(run_migrations, _PATCHED, True)
        EnvironmentContext.run_migrations = run_migrations  # type: ignore[method-assign]
    _ONLY.append(MAIN_ENGINE if bind is None else bind)
    try:
        yield
    finally:
        _ONLY.pop()


def bind_engine(db: Any, bind: str) -> Any:
    """The engine of bind ``bind``, looked up as Flask-Migrate's multidb env.py does (in an app context):
    ``db.get_engine(bind=...)`` on Flask-SQLAlchemy 2.x, ``db.engines[bind]`` on 3.x."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return db.get_engine(bind=bind)
    except (TypeError, AttributeError):
        return db.engines.get(bind)


def bind_metadata(db: Any, bind: str | None) -> sa.MetaData:
    """The models of one database, as the multidb env.py hands them to autogenerate: ``db.metadatas[bind]`` on
    Flask-SQLAlchemy 3.x; on 2.x (one MetaData for every bind) the tables whose ``info['bind_key']`` is ``bind``
    (what ``__bind_key__`` sets), copied into a MetaData of their own."""
    metadatas = getattr(db, "metadatas", None)
    if metadatas is not None:
        found = metadatas.get(bind)
        return found if found is not None else sa.MetaData()
    out = sa.MetaData(naming_convention=dict(db.metadata.naming_convention))
    for table in db.metadata.sorted_tables:
        if table.info.get("bind_key") == bind:
            (table.to_metadata if hasattr(table, "to_metadata") else table.tometadata)(out)
    return out


def backend_name(url: Any) -> str | None:
    """The dialect of a configured URL (``postgresql``, ``mysql``, ``sqlite``), MariaDB counted as MySQL; ``None``
    when there is no URL or it does not parse."""
    if isinstance(url, dict):  # Flask-SQLAlchemy 3: a bind may be a dict of engine options with its "url"
        url = url.get("url")
    if not url:
        return None
    try:
        name = make_url(str(url)).get_backend_name()
    except Exception:  # noqa: BLE001 - an unparsable URL: Flask-SQLAlchemy says so when the app starts
        return None
    return {"mariadb": "mysql", "postgres": "postgresql"}.get(name, name)


def pinned_binds(main_url: Any, binds: dict[Any, Any]) -> dict[str, str | None]:
    """Bind key → the dialect it is pinned to in the app's configuration (its URL names another dialect than the
    main database's), or ``None``: it follows the database under test, like the main one."""
    main = backend_name(main_url)
    out: dict[str, str | None] = {}
    for key, url in binds.items():
        if key is None:
            continue
        own = backend_name(url)
        out[str(key)] = own if own and main and own != main else None
    return out


# -- the parent's side: which sessions each database gets, and how its verdicts name it ------------------------

def binds_here(binds: dict[str, str | None] | None, dialect: str, selected: list[str],
               planned: tuple[str, ...]) -> tuple[list[str], list[CheckResult]]:
    """A multi-database app's binds checked on this database (those that follow the database under test, and
    those pinned to its dialect), and a ``skipped`` verdict per planned check for each bind pinned to a dialect
    that is not among ``--db`` (``selected``); a bind pinned to another selected dialect is checked there."""
    here, skipped = [], []
    for key, pinned in (binds or {}).items():
        if pinned is None or pinned == dialect:
            here.append(key)
        elif pinned not in selected:
            why = (f"not run: SQLALCHEMY_BINDS[{key!r}] is a {pinned} URL (the main database's is not), so this bind "
                   f"is checked on {pinned} only, which is not among --db; add {pinned} to --db to check it")
            skipped += [CheckResult(name, SKIPPED, None, why, bind=key) for name in planned]
    return here, skipped


def bind_plans(plans: list[tuple[str, ...]], bind: str | None) -> list[tuple[str, ...]]:
    """The sessions of one database of a multi-database app: a bind's have no ``single_head`` (the history is the
    one of the main database's, checked once)."""
    if bind is None:
        return plans
    trimmed = [tuple(c for c in plan if c != "single_head") for plan in plans]
    return [plan for plan in trimmed if plan]


def for_bind_results(results: list[CheckResult], bind: str | None) -> list[CheckResult]:
    """A multi-database app's session on bind ``bind``: the verdicts the runner made itself (a check the worker
    never reached, a timeout) name the bind like the worker's own (see :func:`harness.run.worker.for_bind`)."""
    if bind is None:
        return results
    return [r if r.bind == bind else replace(r, bind=bind, message=f"bind {bind}: {r.message}"
                                             if r.status in (FAILED, ERROR) else r.message) for r in results]


__all__ = ["bind_plans", "binds_here", "for_bind_results", "MAIN_ENGINE", "backend_name", "bind_engine", "bind_metadata", "is_multidb_env", "only_engine",
           "pinned_binds"]
