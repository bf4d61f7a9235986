"""Make Flask-SQLAlchemy bind the scratch database, whatever the app's own configuration says.

Tutorial apps hard-code ``app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///blog.db"`` (or a production
``mysql://user:password@host/db`` in a Config class) and call ``SQLAlchemy(app)`` at import time. Setting
``DATABASE_URL`` cannot reach such an app, and the database it is configured for may be production's. So before
the app's module is imported, the worker wraps :meth:`flask_sqlalchemy.SQLAlchemy.init_app` — which every
Flask-SQLAlchemy from 2.5 to 3.1 calls, from ``SQLAlchemy(app)`` too — to overwrite the configured URL with the
scratch database's just before the engines are made. The configured database is never connected to.

Other binds (``SQLALCHEMY_BINDS``) get a throwaway SQLite file each: a single-database ``env.py`` never migrates
them, and whatever the app does with them at start-up then happens on a file the harness removes. A
multi-database ``env.py`` (``flask db init --multidb``, :mod:`harness.chain.multidb`) migrates them too: then each
bind under test gets a scratch database of its own (``bind_urls``), given by the parent; a multidb env.py without
them is refused (:func:`check_single_database_env`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine.url import URL, make_url

from ..versions import bind_engines
from ..errors import AppLoadError
from .multidb import is_multidb_env, pinned_binds

_FORCED = "_migration_harness_forced"
#: what the app configured, seen when its ``init_app`` ran (before the harness overwrote it): ``pinned`` bind key →
#: the dialect its URL names when that is not the main database's (see :func:`harness.chain.multidb.pinned_binds`)
CONFIGURED: dict[str, Any] = {"pinned": {}}


def force_database(url: str, bind_directory: Path, bind_urls: dict[str, str] | None = None) -> None:
    """From now on, every ``SQLAlchemy.init_app(app)`` in this process binds ``url`` as the default database,
    ``bind_urls[key]`` for the binds given there (a multi-database app's scratch databases) and a file under
    ``bind_directory`` for each other bind key."""
    from flask_sqlalchemy import SQLAlchemy

    original = SQLAlchemy.init_app
    if getattr(original, _FORCED, False):
        return
    given = dict(bind_urls or {})

    def init_app(self: Any, app: Any, *args: Any, **kwargs: Any) -> Any:
        config = app.config
        CONFIGURED["pinned"] = pinned_binds(config.get("SQLALCHEMY_DATABASE_URI"),
                                            config.get("SQLALCHEMY_BINDS") or {})
        config["SQLALCHEMY_DATABASE_URI"] = url
        options = config.get("SQLALCHEMY_ENGINE_OPTIONS")
        if isinstance(options, dict) and "url" in options:
            config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "url": url}
        binds = config.get("SQLALCHEMY_BINDS") or {}
        if binds:
            config["SQLALCHEMY_BINDS"] = {key: url if key is None else given.get(str(key))
                                          or bind_url(bind_directory, key) for key in binds}
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
    """Refuse a multi-database env.py when the app has other binds and this command gives them no scratch
    databases of their own (only ``run`` does): it would migrate them too."""
    keys = bind_keys(app)
    if keys and is_multidb_env(env_py):
        raise AppLoadError(
            f"{env_py} migrates several databases (flask db init --multidb) and the app has the binds "
            f"{', '.join(keys)}: this command checks single-database apps only (`migration-harness run` checks "
            "each bind on a scratch database of its own); point --app at a factory without SQLALCHEMY_BINDS")


def same_database(expected: str | URL, actual: str | URL) -> bool:
    """Whether two URLs name the same database on the same server (drivers may differ)."""
    a, b = make_url(expected), make_url(actual)
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return bool(a.database) and bool(b.database) and os.path.realpath(a.database) == os.path.realpath(b.database)
    return (a.host, a.port, a.database, a.username) == (b.host, b.port, b.database, b.username)


def bound_elsewhere(app: Any, db: Any, directory: Path, bind_urls: dict[str, str] | None = None) -> list[str]:
    """Bind keys whose engine is neither their scratch database (``bind_urls``) nor the harness's throwaway file
    (should never happen): checked before DDL."""
    engines = bind_engines(db)
    out = []
    for key in bind_keys(app):
        engine = engines.get(key) if engines is not None else None
        url = engine.url if engine is not None else app.config["SQLALCHEMY_BINDS"].get(key)
        if bind_urls and key in bind_urls:
            if not same_database(bind_urls[key], url):
                out.append(key)
        elif not str(url).startswith(f"sqlite:///{directory}{os.sep}"):
            out.append(key)
    return out
