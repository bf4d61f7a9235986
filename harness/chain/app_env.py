"""Load the user's Flask app on a scratch database URL and get the alembic Config its Flask-Migrate uses.

Runs inside a worker process (one app per scratch database), so an app whose module builds ``app`` at import
time gets its own URL too.
"""
from __future__ import annotations

import configparser
import importlib
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .binding import CONFIGURED, bind_keys, bound_elsewhere, check_single_database_env, force_database, same_database
from ..versions import default_engine, default_metadata, find_flask_app
from .multidb import bind_engine, bind_metadata, is_multidb_env
from ..errors import AppLoadError, MigrationsError, WrongDatabaseError
from ..config.redact import safe_url


@dataclass
class AppEnv:
    """A created app, its Flask-Migrate wiring, and the alembic Config for its migrations directory."""

    app: Any
    migrate_ext: Any
    directory: str
    alembic_config: Any
    #: a multi-database app (``flask db init --multidb``, each bind on a scratch database of its own)
    multidb: bool = False
    #: the database the checks look at: ``None`` the main one, else a bind key (multi-database apps)
    bind: str | None = None

    @property
    def db(self) -> Any:
        return self.migrate_ext.db

    def engine(self) -> Any:
        """The engine Flask-Migrate's env.py migrates with (same lookup as its template; in an app context): the
        main database's, or the bind's under test."""
        if self.bind is not None:
            return bind_engine(self.db, self.bind)
        return default_engine(self.db)

    def metadata(self) -> Any:
        """The app's models: the MetaData of Flask-SQLAlchemy's default bind (``db.metadata``); for a
        multi-database app, the models of the database under test (:func:`harness.chain.multidb.bind_metadata`)."""
        if self.multidb:
            return bind_metadata(self.db, self.bind)
        return default_metadata(self.db)

    def env_metadata(self) -> list[Any]:
        """The MetaData the app's env.py hands to autogenerate (what ``flask db migrate`` compares with): found
        by running env.py against the scratch database with a migration function that only records it. Usually
        ``db.metadata``; some apps keep models on a MetaData of their own (``Base.metadata``) too."""
        from alembic.runtime.environment import EnvironmentContext
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self.alembic_config)
        seen: list[Any] = []

        def record(heads: Any, context: Any) -> list[Any]:
            seen.append(context.opts.get("target_metadata"))
            return []

        with EnvironmentContext(self.alembic_config, script, fn=record):
            script.run_env()
        target = seen[0] if seen else None
        if target is None:
            return []
        return list(target) if isinstance(target, (list, tuple)) else [target]

    def model_metadatas(self) -> list[Any]:
        """Every MetaData holding the app's models: ``db.metadata``, then any other one env.py uses."""
        own = self.metadata()
        try:
            others = [m for m in self.env_metadata() if m is not own]
        except Exception:  # noqa: BLE001 - env.py could not run here; its failures show in the other checks
            others = []
        if self.multidb:  # Flask-SQLAlchemy 2.x: env.py copies the bind's tables into a new MetaData each time
            others = [m for m in others if set(m.tables) - set(own.tables)]
        return [own, *others]


def _tail(exc: BaseException, lines: int = 6) -> str:
    """The last lines of a traceback: enough to see where the user's code failed."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def _is_flask_app(value: Any) -> bool:
    from flask import Flask

    return isinstance(value, Flask)


def load_app(import_path: str, url: str) -> tuple[Any, str]:
    """Import ``import_path`` exactly like ``flask --app`` does and return the app and the directory its import
    root was found in.

    Accepts ``module``, ``module:name``, ``module:factory``, ``module:factory(args)`` and file paths, relative to
    the working directory. A factory is called the way ``flask`` calls it: with no arguments unless the string
    gives them. ``DATABASE_URL`` and ``SQLALCHEMY_DATABASE_URI`` are set before anything runs, and Flask-SQLAlchemy
    binds the scratch database whatever the app configures (:mod:`harness.chain.binding`).
    """
    from flask.cli import NoAppException, prepare_import

    os.environ["DATABASE_URL"] = url
    os.environ["SQLALCHEMY_DATABASE_URI"] = url
    path, _, name = import_path.partition(":")
    if path.endswith(".py") and not Path(path).exists():
        raise AppLoadError(f"--app {import_path}: no file {path}")
    module_name = prepare_import(path)
    root = sys.path[0]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]:
            raise AppLoadError(f"--app {import_path}: no module named {module_name!r} "
                               f"(relative to {os.getcwd()})") from exc
        raise AppLoadError(f"--app {import_path}: importing {module_name} failed: {_tail(exc)}") from exc

    where = f"{module_name}:{name}" if name else module_name
    try:
        app = find_flask_app(module, name)
    except NoAppException as exc:
        raise AppLoadError(f"--app {import_path}: {' '.join(str(exc).split())}") from exc
    except Exception as exc:
        raise AppLoadError(f"the app factory {where} raised: {_tail(exc)}") from exc
    if not _is_flask_app(app):
        raise AppLoadError(f"--app {import_path}: {where} gave {type(app).__name__}, not a Flask app")
    return app, root


def open_app_env(import_path: str, url: str, migrations: str | None, bind_directory: Path,
                 bind_urls: dict[str, str] | None = None, inspect_only: bool = False) -> AppEnv:
    """Create the app on ``url``, verify its engine is that database, and build its alembic Config.

    Raises :class:`AppLoadError`, :class:`MigrationsError` or :class:`WrongDatabaseError`; the caller must have
    run nothing against the database yet. Other binds are files under ``bind_directory``, but for the scratch
    databases ``bind_urls`` gives a multi-database app's binds (``None``: a single-database run, which refuses a
    multi-database env.py unless ``inspect_only``, the preflight that finds out).
    """
    force_database(url, bind_directory, bind_urls)
    app, root = load_app(import_path, url)
    ext = app.extensions.get("migrate")
    if ext is None:
        raise AppLoadError(f"the app from {import_path} does not set up Flask-Migrate "
                           "(call Migrate(app, db) or migrate.init_app(app, db) in it)")
    directory = migrations_directory(migrations or ext.directory, root)
    env = AppEnv(app=app, migrate_ext=ext, directory=directory, alembic_config=None, multidb=bind_urls is not None)
    check_migrations_directory(directory)
    if bind_urls is None and not inspect_only:
        check_single_database_env(Path(directory) / "env.py", app)
    with app.app_context():
        actual = env.engine().url
        if not same_database(url, actual):
            raise WrongDatabaseError(expected=safe_url(url), actual=safe_url(actual))
        elsewhere = bound_elsewhere(app, env.db, bind_directory, bind_urls)
        if elsewhere:
            raise AppLoadError(f"the app's binds {', '.join(elsewhere)} do not point at the harness's throwaway "
                               "files; point --app at a factory without SQLALCHEMY_BINDS")
        env.alembic_config = ext.migrate.get_config(directory)
    return env


def multidb_layout(env: AppEnv, forced: bool) -> dict[str, Any] | None:
    """What the preflight tells the parent about a multi-database app: ``{"binds": {key: pinned dialect or
    None}}`` when its env.py is the multidb template (or ``--multidb``, ``forced``) and it has binds, else
    ``None`` (a single-database app). ``--multidb`` on an app without binds is a usage error."""
    keys = bind_keys(env.app)
    if not forced and not (keys and is_multidb_env(Path(env.directory) / "env.py")):
        return None
    if not keys:
        raise AppLoadError("--multidb: the app configures no SQLALCHEMY_BINDS, so there is no other database "
                           "to migrate; drop --multidb")
    pinned = CONFIGURED["pinned"]
    return {"binds": {key: pinned.get(key) for key in keys}}


def migrations_directory(directory: str, app_root: str) -> str:
    """The migrations directory as Flask-Migrate resolves it (relative to the working directory), or, when the
    working directory has none, next to the app (``--app path/to/app.py`` run from elsewhere)."""
    if os.path.isabs(directory) or os.path.isdir(directory):
        return os.path.abspath(directory)
    beside = os.path.join(app_root, directory)
    return os.path.abspath(beside if os.path.isdir(beside) else directory)


def check_migrations_directory(directory: str) -> None:
    """A Flask-Migrate directory has alembic.ini, an env.py that takes its engine from the app, and versions/."""
    path = Path(directory)
    if not path.is_dir():
        raise MigrationsError(f"migrations directory {directory} does not exist (pass --migrations DIR)")
    env_py = path / "env.py"
    if not env_py.is_file() or not (path / "alembic.ini").is_file():
        raise MigrationsError(f"{directory} is not a Flask-Migrate migrations directory: it needs alembic.ini "
                              "and env.py (create one with `flask db init`)")
    # A plain alembic env.py reads sqlalchemy.url from alembic.ini, i.e. some other database than the scratch
    # one: refuse it rather than migrate a database the harness did not create.
    if "current_app" not in env_py.read_text(encoding="utf-8", errors="replace"):
        raise MigrationsError(f"{env_py} does not take its engine from the Flask app (current_app); "
                              "the harness only runs Flask-Migrate env.py files, which migrate the app's database")
    if not (path / "versions").is_dir() and not version_locations(path / "alembic.ini"):
        raise MigrationsError(f"{directory} has no versions/ directory (and its alembic.ini sets no "
                              "version_locations)")


def version_locations(alembic_ini: Path) -> str:
    """alembic.ini's ``version_locations`` (revision files in several directories), or ``""``."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(alembic_ini, encoding="utf-8")
    except configparser.Error:
        return ""  # alembic itself will say what is wrong with the file
    return parser.get("alembic", "version_locations", fallback="").strip()

