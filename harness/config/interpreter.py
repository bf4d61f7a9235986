"""The app's interpreter: which Python runs the worker (the app's side), and whether it can.

The harness belongs in a venv of its own (``pipx install migration-harness``); the app's code, its Flask,
Flask-SQLAlchemy, Flask-Migrate, alembic, SQLAlchemy and drivers stay in the app's venv, untouched. The worker
runs in the app's interpreter with the harness's code put on its path (:mod:`harness.run.process`). Which one:
``--python`` / ``HARNESS_PYTHON`` / pyproject ``python``, else the active virtualenv's (``$VIRTUAL_ENV``) when it
is not the harness's own, else the harness's own interpreter (the harness installed into the app's venv).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError

#: the oldest Python the worker runs on
MIN_PYTHON: tuple[int, int] = (3, 9)
#: prints ``3.9.18 <sys.prefix>`` on any Python (2.7 included), so that an old one is named, not a SyntaxError
_PROBE = "import sys; sys.stdout.write('%d.%d.%d %s' % (sys.version_info[:3] + (sys.prefix,)))"


def _venv_python(directory: Path) -> Path:
    """The interpreter of a virtualenv directory (POSIX ``bin/python``, Windows ``Scripts/python.exe``)."""
    for candidate in (directory / "bin" / "python", directory / "Scripts" / "python.exe"):
        if candidate.exists():
            return candidate
    return directory / "bin" / "python"


def _same_environment(prefix: str) -> bool:
    return os.path.realpath(prefix) == os.path.realpath(sys.prefix)


def resolve_python(flag: str | None, env: Mapping[str, str], file_value: object, cwd: str) -> str | None:
    """The app's interpreter as an absolute path, or ``None`` for the harness's own.

    Raises :class:`ConfigError` (one line) for a path that is not a Python, or a Python older than 3.9.
    """
    given = [(v, source) for v, source in ((flag, "--python"), (env.get("HARNESS_PYTHON"), "HARNESS_PYTHON"),
                                            (file_value, "pyproject python")) if v not in (None, "")]
    if given:
        value, source = given[0]
        if not isinstance(value, str):
            raise ConfigError(f"{source} must be the path of a Python interpreter, not {value!r}")
        path = Path(os.path.expanduser(value))
        path = path if path.is_absolute() else Path(cwd) / path
        if path.is_dir():  # a virtualenv's directory: its interpreter
            path = _venv_python(path)
        return _checked(path, f"{source} {value}")
    active = env.get("VIRTUAL_ENV")
    if active and not _same_environment(active) and _venv_python(Path(active)).exists():
        return _checked(_venv_python(Path(active)), f"the active virtualenv's Python (VIRTUAL_ENV={active})")
    return None


def _checked(path: Path, what: str) -> str | None:
    """``path`` (absolute, symlinks kept: a venv's python is a link to the base interpreter) once it answers as a
    Python 3.9+; ``None`` when it is this very environment."""
    if not path.exists():
        raise ConfigError(f"{what}: no such file (give the app's interpreter, e.g. .venv/bin/python)")
    if not os.access(path, os.X_OK) or path.is_dir():
        raise ConfigError(f"{what}: not an executable file (give the app's interpreter, e.g. .venv/bin/python)")
    try:
        answer = subprocess.run([str(path), "-c", _PROBE], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        version_text, _, prefix = answer.stdout.decode("utf-8", "replace").partition(" ")
        version = tuple(int(part) for part in version_text.split("."))
        if answer.returncode != 0 or len(version) != 3:
            raise ValueError
    except (OSError, ValueError, subprocess.TimeoutExpired):
        raise ConfigError(f"{what}: not a Python interpreter (it did not answer `-c \"import sys\"`)") from None
    if version[:2] < MIN_PYTHON:
        raise ConfigError(f"{what} is Python {version_text}; the harness's worker needs Python "
                          f"{'.'.join(map(str, MIN_PYTHON))} or newer")
    if _same_environment(prefix):
        return None
    return str(path.absolute())


__all__ = ["MIN_PYTHON", "resolve_python"]
