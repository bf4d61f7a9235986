"""Make Flask-SQLAlchemy bind the scratch database, whatever the app's own configuration says.

Tutorial apps hard-code ``app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///blog.db"`` (or a production
``mysql://user:password@host/db`` in a Config class) and call ``SQLAlchemy(app)`` at import time. Setting
``DATABASE_URL`` cannot reach such an app, and the database it is configured for may be production's. So before
the app's module is imported, the worker wraps :meth:`flask_sqlalchemy.SQLAlchemy.init_app` — which every
Flask-SQLAlchemy from 2.5 to 3.1 calls, from ``SQLAlchemy(app)`` too — to overwrite the configured URL with the
scratch database's just before the engines are made. The configured database is never connected to.

Other binds (``SQLALCHEMY_BINDS``) get a throwaway SQLite file each: a single-database ``env.py`` never migrates
them, and whatever the app does with them at start-up then happens on a file the harness removes. A multi-database
``env.py`` (``flask db init --multidb``) would migrate them too; it is refused (see
:func:`check_single_database_env`), since the binds would need scratch databases of their own dialects.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .compat import bind_engines
from .errors import AppLoadError

_FORCED = "_migration_harness_forced"


def force_database(url: str, bind_directory: Path) -> None:
    """From now on, every ``SQLAlchemy.init_app(app)`` in this process binds ``url`` as the default database
    and a file under ``bind_directory`` for each other bind key."""
    from flask_sqlalchemy import SQLAlchemy

    original = SQLAlchemy.init_app
    if getattr(original, _FORCED, False):
        return

    def init_app(self: Any, app: Any, *args: Any, **kwargs: Any) -> Any:
        config = app.config
        config["SQLALCHEMY_DATABASE_URI"] = url
        options = config.get("SQLALCHEMY_ENGINE_OPTIONS")
        if isinstance(options, dict) and "url" in options:
            config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "url": url}
        binds = config.get("SQLALCHEMY_BINDS") or {}
        if binds:
            config["SQLALCHEMY_BINDS"] = {key: url if key is None else bind_url(bind_directory, key)
                                          for key in binds}
        return original(self, app, *args, **kwargs)

    setattr(init_app, _FORCED, True)
    init_app.__wrapped__ = original  # type: ignore[attr-defined]
    SQLAlchemy.init_app = init_app  # type: ignore[method-assign]


def bind_url(directory: Path, key: str) -> str:
    """The throwaway SQLite file that stands in for bind ``key``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(key))
    return f"sqlite:///{directory / f'bind_{safe}.db'}"


def bind_keys(app: Any) -> list[str]:
    """The app's bind keys other than the default one."""
    return sorted(str(k) for k in (app.config.get("SQLALCHEMY_BINDS") or {}) if k is not None)


def check_single_database_env(env_py: Path, app: Any) -> None:
    """Refuse a multi-database env.py when the app has other binds: it would migrate them too."""
    keys = bind_keys(app)
    if not keys:
        return
    text = env_py.read_text(encoding="utf-8", errors="replace")
    if "SQLALCHEMY_BINDS" in text or "bind_names" in text or "get_engine(bind" in text:
        raise AppLoadError(
            f"{env_py} migrates several databases (flask db init --multidb) and the app has the binds "
            f"{', '.join(keys)}: multi-database migrations are not supported yet (each bind would need a scratch "
            "database of its own); point --app at a factory without SQLALCHEMY_BINDS")


def bound_elsewhere(app: Any, db: Any, directory: Path) -> list[str]:
    """Bind keys whose engine is *not* the harness's throwaway file (should never happen): checked before DDL."""
    engines = bind_engines(db)
    out = []
    for key in bind_keys(app):
        engine = engines.get(key) if engines is not None else None
        url = str(engine.url) if engine is not None else app.config["SQLALCHEMY_BINDS"].get(key)
        if not str(url).startswith(f"sqlite:///{directory}{os.sep}"):
            out.append(key)
    return out
