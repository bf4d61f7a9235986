"""The apps' environments the isolation tests run the worker in: one venv per stack, built once and kept.

Each venv lives under ``~/.cache/migration-harness-tests/<hash of the Python and the pins>`` (outside the
repository; ``HARNESS_TEST_STACKS`` moves it), so a second test session reuses it. It is built in place under a
lock and complete once its ``stack.txt`` is written, so concurrent pytest workers build it once and never use half
of it; built where it stays, its console scripts (``bin/flask``) work, for checking a verdict by hand with plain
``flask db``. It holds the app's stack only: never the harness or its dependencies.
"""
from __future__ import annotations

import fcntl
import functools
import glob
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("HARNESS_TEST_STACKS", Path.home() / ".cache" / "migration-harness-tests"))

#: A 2020 app's stack: Flask 1.1 with the Werkzeug / Jinja2 / MarkupSafe / itsdangerous / click it was released
#: with, Flask-SQLAlchemy 2.4, Flask-Migrate 2.5, alembic 1.4, SQLAlchemy 1.3 (the oldest the worker supports).
STACK_2020 = ["Flask==1.1.2", "Werkzeug==1.0.1", "Jinja2==2.11.3", "MarkupSafe==1.1.1", "itsdangerous==1.1.0",
              "click==7.1.2", "Flask-SQLAlchemy==2.4.4", "Flask-Migrate==2.5.3", "alembic==1.4.3",
              "SQLAlchemy==1.3.24", "psycopg2-binary==2.8.6", "PyMySQL==0.10.1"]
#: a 2022 app's stack: Flask-SQLAlchemy 2.5 (its last 2.x: one MetaData for every bind), Flask-Migrate 3.1, SQLAlchemy 1.4
STACK_2022 = ["Flask==2.2.5", "Werkzeug==2.2.3", "Flask-SQLAlchemy==2.5.1", "Flask-Migrate==3.1.0", "alembic==1.8.1",
              "SQLAlchemy==1.4.54", "psycopg2-binary==2.9.13", "PyMySQL==1.2.4"]
#: the newest release of everything (resolved when the venv is first built)
STACK_NEWEST = ["Flask", "Flask-SQLAlchemy", "Flask-Migrate", "alembic", "SQLAlchemy", "psycopg2-binary", "PyMySQL"]
#: one package below the worker's floor (alembic 1.3)
STACK_BELOW_FLOOR = [p if not p.startswith("alembic==") else "alembic==1.3.3" for p in STACK_2020]
#: the 2020 stack without its database drivers
STACK_NO_DRIVERS = [p for p in STACK_2020 if not p.startswith(("psycopg2", "PyMySQL"))]
#: the stacks ``HARNESS_TEST_APP_PYTHON`` can name: the Python and the pins of each
STACKS: dict[str, tuple[str, list[str]]] = {"2020": ("3.9", STACK_2020), "newest": ("3.13", STACK_NEWEST)}


def interpreter(version: str) -> str:
    """A pyenv-installed Python ``version`` (its newest patch), else ``python<version>`` on PATH."""
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")),
                   key=lambda path: [int(p) for p in path.split("/")[-3].split(".") if p.isdigit()])
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    assert on_path, f"the isolation tests need Python {version} (pyenv install {version}, or python{version} on PATH)"
    return on_path


def stack_python(version: str, pins: list[str]) -> Path:
    """The interpreter of a venv holding exactly ``pins`` on Python ``version``, built on first use."""
    base = interpreter(version)
    # "in place": venvs built elsewhere and renamed had console scripts naming a path that no longer exists
    key = hashlib.sha256("\n".join(["in place", os.path.realpath(base), *pins]).encode()).hexdigest()[:16]
    venv = CACHE / key
    python = venv / "bin" / "python"
    if (venv / "stack.txt").exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / "stack.txt").exists():  # another worker built it while this one waited
            return python
        shutil.rmtree(venv, ignore_errors=True)  # what an interrupted build left
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
        # pip's own output only on failure; --no-cache-dir keeps nothing outside the venv
        done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                               "--no-cache-dir", "-q", *pins], capture_output=True, text=True)
        assert done.returncode == 0, f"cannot build the stack {pins}: {done.stderr[-2000:]}"
        (venv / "stack.txt").write_text("\n".join(pins) + "\n")  # last: the venv is complete
    return python


def freeze(python: Path) -> str:
    """``pip freeze`` of a venv: what the harness must never change."""
    return subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"], check=True,
                          capture_output=True, text=True).stdout


@functools.lru_cache(maxsize=None)
def app_python() -> str | None:
    """The app's interpreter the tests run the worker in: ``HARNESS_TEST_APP_PYTHON``, an interpreter's path or the
    name of one of :data:`STACKS` (built on first use); ``None`` for the test session's own."""
    value = os.environ.get("HARNESS_TEST_APP_PYTHON", "")
    if not value:
        return None
    if value in STACKS:
        version, pins = STACKS[value]
        return str(stack_python(version, pins))
    assert Path(value).is_file(), f"HARNESS_TEST_APP_PYTHON={value}: neither an interpreter nor one of {sorted(STACKS)}"
    return str(Path(value).absolute())
