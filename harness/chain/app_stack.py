"""What the worker needs of the app's environment, checked before anything of it is imported.

The worker runs in the app's own interpreter (``--python``), with the app's own Flask, Flask-SQLAlchemy,
Flask-Migrate, alembic, SQLAlchemy and drivers. Below the oldest releases it supports, or without the driver of a
database it is to run on, it says so in one line (a ``fatal`` event: a :class:`~harness.errors.ConfigError`, exit
2) instead of failing somewhere inside with a traceback. The harness's preflight worker runs this before any
database starts (:mod:`harness.run.floor` is the worker's entry point: these checks, then the worker). Standard library
only: this module must import on any stack.
"""
from __future__ import annotations

import importlib.util
import sys
from importlib import metadata

#: the oldest release of each package the worker supports (the 2020 stacks: docs/versions.md)
WORKER_FLOOR: dict[str, tuple[int, ...]] = {
    "Flask": (1, 1), "Flask-SQLAlchemy": (2, 4), "Flask-Migrate": (2, 5), "alembic": (1, 4), "SQLAlchemy": (1, 3),
}

#: SQLAlchemy driver name → (the module it imports, the package that provides it)
DRIVERS: dict[str, tuple[str, str]] = {
    "psycopg2": ("psycopg2", "psycopg2-binary"), "psycopg": ("psycopg", "psycopg[binary]"),
    "pg8000": ("pg8000", "pg8000"), "asyncpg": ("asyncpg", "asyncpg"), "pymysql": ("pymysql", "PyMySQL"),
    "mysqldb": ("MySQLdb", "mysqlclient"), "mysqlconnector": ("mysql.connector", "mysql-connector-python"),
    "mariadbconnector": ("mariadb", "mariadb"),
}
#: the driver SQLAlchemy picks for a URL without ``+driver``
DEFAULT_DRIVERS: dict[str, str] = {"postgresql": "psycopg2", "mysql": "mysqldb", "mariadb": "mysqldb"}


#: the distributions whose versions a report names (the app's stack and the drivers); absent ones are left out
REPORTED_PACKAGES = ("Flask", "Flask-SQLAlchemy", "Flask-Migrate", "alembic", "SQLAlchemy", "click",
                     "testcontainers", "psycopg2-binary", "psycopg2", "PyMySQL")


def installed_versions() -> dict[str, str]:
    """Python's and each installed package's version in this interpreter."""
    import platform

    found = {"python": platform.python_version()}
    for name in REPORTED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def below_floor() -> str | None:
    """One line naming the first package older than the worker supports, or ``None``."""
    for name, oldest in WORKER_FLOOR.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            return (f"the app's interpreter ({sys.executable}) has no {name}: run the harness with the app's own "
                    "interpreter (--python .venv/bin/python), the one its Flask-Migrate is installed in")
        if _release(found) < oldest:
            return (f"{name} {found} in the app's environment is older than {'.'.join(map(str, oldest))}, the oldest "
                    f"the harness's worker supports ({sys.executable})")
    return None


def _driver(url: str) -> tuple[str, str] | None:
    """``(dialect, driver)`` of a SQLAlchemy URL (``postgresql+psycopg2://...``), without importing SQLAlchemy."""
    scheme = url.split(":", 1)[0]
    if "://" not in url or scheme.startswith("sqlite"):
        return None
    dialect, _, driver = scheme.partition("+")
    return dialect, driver or DEFAULT_DRIVERS.get(dialect, "")


def missing_driver(urls: list[str]) -> str | None:
    """One line naming the package to add for the first database whose driver the app's environment lacks."""
    for url in urls:
        found = _driver(url)
        if not found or found[1] not in DRIVERS:
            continue
        dialect, driver = found
        module, package = DRIVERS[driver]
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            return (f"the app's environment has no {module} (the {dialect} driver): add {package} to it "
                    f"(`{sys.executable} -m pip install {package}`), or leave {dialect} out with --db")
    return None


__all__ = ["DEFAULT_DRIVERS", "DRIVERS", "REPORTED_PACKAGES", "WORKER_FLOOR", "below_floor", "installed_versions",
           "missing_driver"]
