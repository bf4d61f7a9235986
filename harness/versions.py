"""Every difference between the library versions the harness supports, in one place.

The harness's worker runs in the app's own interpreter (``--python``, or the harness installed into the app's
environment), so it adapts to the Flask, Flask-SQLAlchemy, Flask-Migrate, alembic, SQLAlchemy, click and Python it
finds there, back to the 2020 stacks, instead of requiring newer ones (see docs/versions.md). Each shim below names the versions that differ; the rest of the
harness calls these and never asks which version it runs on.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# -- Python -----------------------------------------------------------------------------------------------------

def __getattr__(name: str) -> Any:
    """``tomllib``, imported when first asked for: on Python 3.9 / 3.10 it is tomli, a dependency of the harness
    that the app's own interpreter (which runs the worker, ``--python``) need not have."""
    if name != "tomllib":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.9 / 3.10: the same parser, published as tomli (a dependency there, by environment marker)
        import tomli as tomllib
    return tomllib


def strict_zip(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """``zip(..., strict=True)``, which Python 3.9 lacks: a length mismatch raises :class:`ValueError`."""
    if sys.version_info >= (3, 10):
        return zip(*iterables, strict=True)
    return _strict_zip(*iterables)


def _strict_zip(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    sentinel = object()
    iterators = [iter(i) for i in iterables]
    while True:
        items = [next(it, sentinel) for it in iterators]
        if all(item is sentinel for item in items):
            return
        if any(item is sentinel for item in items):
            raise ValueError("strict_zip: arguments have different lengths")
        yield tuple(items)


# -- SQLAlchemy 1.3 / 1.4 / 2.x ------------------------------------------------------------------------------------

_SQLALCHEMY = tuple(int(p) for p in sa.__version__.split(".")[:2])  # (major, minor) of the SQLAlchemy running
#: SQLAlchemy 1.4+ (``select(*columns)``, ``Result``, ``exec_driver_sql``); the worker also runs on 1.3, the
#: release 2020-era apps pin (it runs in the app's own interpreter: ``--python``)
SQLALCHEMY_14 = _SQLALCHEMY >= (1, 4)
#: SQLAlchemy 2.0+: PostgreSQL's ``Inspector.get_table_names()`` lists every table visible on the search path (but the
#: catalogue's and temporary ones); before 2.0, the tables of the default schema (``current_schema()``) only. The
#: two differ on a search path of several existing schemas.
INSPECTOR_LISTS_SEARCH_PATH = _SQLALCHEMY >= (2, 0)


def select(*columns: Any) -> Any:
    """``sa.select(a, b)``; SQLAlchemy 1.3 takes the columns as one list (2.0 refuses the list)."""
    return sa.select(*columns) if SQLALCHEMY_14 else sa.select(list(columns))


def scalars(result: Any) -> list[Any]:
    """The first column of every row: ``Result.scalars().all()``, which 1.3's ``ResultProxy`` lacks."""
    return [row[0] for row in result]


def row_mapping(row: Any) -> dict[str, Any]:
    """A row as a dict of column name → value: ``Row._mapping`` (1.4+); 1.3's ``RowProxy`` is itself a mapping."""
    return dict(row._mapping) if hasattr(row, "_mapping") else dict(row)


def url_text(url: Any, hide_password: bool) -> str:
    """A URL as text: ``render_as_string`` (1.4+); on 1.3 ``str(url)`` shows the password and ``repr`` hides it."""
    if hasattr(url, "render_as_string"):
        return url.render_as_string(hide_password=hide_password)
    return repr(url) if hide_password else str(url)


def exec_driver_sql(conn: Any, statement: str) -> Any:
    """Run SQL text as the driver gets it (no bound-parameter parsing): ``exec_driver_sql`` from 1.4; 1.3 runs a
    plain string that way through ``execute``."""
    if hasattr(conn, "exec_driver_sql"):
        return conn.exec_driver_sql(statement)
    return conn.execute(statement)



#: types whose values are UUIDs: ``sa.Uuid`` exists from SQLAlchemy 2.0; 1.4 reflects PostgreSQL's ``uuid`` as
#: ``postgresql.UUID`` (``as_uuid=False``, i.e. it binds strings)
UUID_TYPES: tuple[type, ...] = tuple(t for t in (getattr(sa, "Uuid", None), postgresql.UUID) if t is not None)


def identity_of(column: sa.Column) -> Any:
    """The column's ``Identity()`` (``GENERATED ... AS IDENTITY``), or ``None``; SQLAlchemy 1.3 has none."""
    return getattr(column, "identity", None)


def copy_table(table: sa.Table, metadata: sa.MetaData) -> sa.Table:
    """A copy of ``table`` in ``metadata`` (its foreign keys resolved there, by name): ``to_metadata`` from 1.4,
    ``tometadata`` before (1.4 still has it, deprecated; 2.0 does not)."""
    if hasattr(table, "to_metadata"):
        return table.to_metadata(metadata)
    return table.tometadata(metadata)


def autoincrement_column(table: sa.Table) -> Any:
    """The column SQLAlchemy numbers itself: ``Table.autoincrement_column`` from 2.0, ``_autoincrement_column``
    (the same attribute, not yet public) on 1.4."""
    if hasattr(table, "autoincrement_column"):
        return table.autoincrement_column
    return table._autoincrement_column


# -- Flask 1.1 / 2.x -----------------------------------------------------------------------------------------------

def has_sequence(conn: Any, name: str) -> bool:
    """Whether the connected database has the sequence ``name``: ``Inspector.has_sequence`` (SQLAlchemy 1.4+), else
    the dialect's own ``has_sequence`` (1.3)."""
    inspector = sa.inspect(conn)
    if hasattr(inspector, "has_sequence"):
        return bool(inspector.has_sequence(name))
    return bool(conn.dialect.has_sequence(conn, name))


def find_flask_app(module: Any, name: str | None) -> Any:
    """The app in ``module`` as ``flask --app module[:name]`` finds it: ``find_app_by_string`` / ``find_best_app``
    of :mod:`flask.cli`, which take a ``ScriptInfo`` first on Flask 1.1 (removed in 2.0)."""
    import inspect

    from flask.cli import ScriptInfo, find_app_by_string, find_best_app

    legacy = next(iter(inspect.signature(find_best_app).parameters)) == "script_info"
    first = (ScriptInfo(),) if legacy else ()
    return find_app_by_string(*first, module, name) if name else find_best_app(*first, module)


# -- Flask-SQLAlchemy 2.5 / 3.0 / 3.1 --------------------------------------------------------------------------------

def default_engine(db: Any) -> Any:
    """The engine Flask-Migrate's env.py migrates with, looked up as its templates do (inside an app context).

    Flask-Migrate 3.1's env.py calls ``db.get_engine()``, 4.x's calls it and falls back to ``db.engine`` on
    ``TypeError`` / ``AttributeError``: an app whose ``db`` overrides ``get_engine`` migrates with what that returns,
    so the harness must check that very engine. ``get_engine()`` is deprecated on Flask-SQLAlchemy 3.0 and 3.1
    (its warning is not the user's concern here); 2.5 takes the app from ``current_app``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return db.get_engine()
    except (TypeError, AttributeError):
        return db.engine


def bind_engines(db: Any) -> Any:
    """Bind key → engine of the current app (``db.engines``, Flask-SQLAlchemy 3), or ``None`` on 2.5, which makes
    them only on demand (the configured ``SQLALCHEMY_BINDS`` then say where each points)."""
    return getattr(db, "engines", None)


def default_metadata(db: Any) -> sa.MetaData:
    """The MetaData Flask-Migrate's env.py hands to autogenerate: ``db.metadatas[None]`` (the default bind's) on
    Flask-SQLAlchemy 3.x, ``db.metadata`` on 2.5, which has one MetaData."""
    metadatas = getattr(db, "metadatas", None)
    if metadatas is not None:
        return metadatas[None]
    return db.metadata


def sqlite_relative_base(app: Any, db: Any) -> str:
    """The directory Flask-SQLAlchemy resolves a relative ``sqlite:///name.db`` against, as the app's own URI
    means it: the instance folder on 3.x (which has ``db.metadatas``), the app's root path on 2.x."""
    return str(app.instance_path if hasattr(db, "metadatas") else app.root_path)


# -- alembic 1.4 – 1.8 / 1.9 – 1.13 / 1.14+ --------------------------------------------------------------------------------------

def pending_autogenerate(config: Any) -> list[Any]:
    """What ``alembic check`` (``flask db check``) finds: the diffs autogenerate would write into a new revision,
    computed by running the app's own env.py with its context options; ``[]`` when there are none.

    alembic 1.14+ raises :class:`AutogenerateDiffsDetected` carrying ``.diffs``; 1.9 – 1.13 raise it with the
    diffs only inside the message; 1.4 – 1.8 have no ``check`` command. There the diffs are computed again exactly as ``alembic.command.check`` does
    (a revision context on the same env.py), so the verdict is the same on every version.
    """
    from alembic import command

    try:
        from alembic.util import AutogenerateDiffsDetected
    except ImportError:  # alembic 1.4 – 1.8: no `alembic check` at all; the same computation
        return _autogenerate_diffs(config)
    try:
        command.check(config)
    except AutogenerateDiffsDetected as exc:
        diffs = getattr(exc, "diffs", None)
        return list(diffs) if diffs is not None else _autogenerate_diffs(config)
    return []


def _autogenerate_diffs(config: Any) -> list[Any]:
    """``alembic.command.check`` up to the point where it has the diffs (the body of that command since 1.9, and of
    ``alembic.command.revision --autogenerate`` since 1.4)."""
    from alembic import autogenerate
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    script_directory = ScriptDirectory.from_config(config)
    command_args = {"message": None, "autogenerate": True, "sql": False, "head": "head", "splice": False,
                    "branch_label": None, "version_path": None, "rev_id": None, "depends_on": None}
    revision_context = autogenerate.RevisionContext(config, script_directory, command_args)

    def retrieve_migrations(rev: Any, context: Any) -> list[Any]:
        revision_context.run_autogenerate(rev, context)
        return []

    with EnvironmentContext(config, script_directory, fn=retrieve_migrations, as_sql=False,
                            template_args=revision_context.template_args, revision_context=revision_context):
        script_directory.run_env()
    return list(revision_context.generated_revisions[-1].upgrade_ops.as_diffs())


# -- alembic 1.4 / 1.5+: one revision down on a branched history -------------------------------------------------------

def _alembic_release() -> tuple[int, ...]:
    import alembic

    return tuple(int(part) for part in alembic.__version__.split(".")[:2] if part.isdigit())


def downgrade_revs(script: Any, target: str, revision: str, current: Any) -> list[Any]:
    """The migration steps that revert exactly ``revision`` (the harness asks alembic for ``target``:
    ``<revision>@-1``, or a merge's first parent), from the database's ``current`` heads.

    alembic 1.5+ walks ``<revision>@-1`` along ``revision``'s own branch. alembic 1.4 walks it down from every
    current head and takes the first step it meets: with two branches applied, that can be the other branch's head
    (``flask db downgrade a003@-1`` on alembic 1.4.3 runs ``downgrade a004 -> a002`` when the version table lists
    a004 first), so the step reverted another revision than the one named. There, when ``revision`` is a current
    head, the step is that revision's own downgrade, exactly what 1.5+ does.
    """
    if _alembic_release() < (1, 5) and revision in set(current or ()):
        from alembic.runtime.migration import MigrationStep

        return [MigrationStep.downgrade_from_script(script.revision_map, script.get_revision(revision))]
    return list(script._downgrade_revs(target, current))


# -- testcontainers 4.0 – 4.14 / 4.15+ -------------------------------------------------------------------------------

def container_class(module: str, name: str) -> Any:
    """A testcontainers container class, e.g. ``container_class("postgres", "PostgresContainer")``: the database
    modules moved to ``testcontainers.community.<module>`` in 4.15; older 4.x have ``testcontainers.<module>``."""
    import importlib

    try:
        found = importlib.import_module(f"testcontainers.community.{module}")
    except ImportError:
        found = importlib.import_module(f"testcontainers.{module}")
    importlib.import_module("testcontainers.core.waiting_utils")  # its logger too, before it says anything
    quiet_testcontainers()
    return getattr(found, name)


def quiet_testcontainers() -> None:
    """testcontainers 4.0 – 4.x give each module a logger of its own at INFO with a handler on standard error
    ("Pulling image ...", "Waiting for container ..."): the harness says what matters in its own words (a bad
    ``--app`` is one line even when the containers were already starting), so only their warnings go through."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name == "testcontainers" or name.startswith("testcontainers."):
            logging.getLogger(name).setLevel(logging.WARNING)


def with_tmpfs(container: Any, path: str, kwargs: dict[str, Any], size: str | None = None) -> None:
    """Mount a tmpfs (of ``size``, e.g. ``2g``, if given) at ``path`` in a not yet started container: newer
    testcontainers pass their own ``tmpfs`` to Docker (``with_tmpfs_mount``), so it must go there; older ones take
    it in the container's kwargs."""
    if hasattr(container, "with_tmpfs_mount"):
        container.with_tmpfs_mount(path)
        if size:  # 4.15 hands its ``size`` to Docker as the whole option string, which refuses a bare "256m"
            container.tmpfs[path] = f"size={size}"
    else:
        kwargs.setdefault("tmpfs", {})[path] = f"rw,size={size}" if size else "rw"


__all__ = ["INSPECTOR_LISTS_SEARCH_PATH",
           "UUID_TYPES", "autoincrement_column", "bind_engines", "container_class", "copy_table", "default_engine", "default_metadata",
           "exec_driver_sql",
           "find_flask_app", "has_sequence", "identity_of", "pending_autogenerate", "row_mapping", "scalars", "select", "strict_zip", "tomllib",
           "url_text", "with_tmpfs"]
