"""Environment variables the app needs per database (``--env NAME=VALUE``, ``[tool.migration-harness.env]``).

Some apps choose their SQL by a setting rather than by the connection (a revision that branches on
``DB_DRIVER``), or read per-database options from the environment. Each database's worker gets the variables
with ``{dialect}``, ``{driver}`` and ``{url}`` filled in for its own scratch database, before the app is imported.

Imported by the harness (to validate) and by the worker (to expand): the standard library only.
"""
from __future__ import annotations

import re
import string
from typing import Any, Iterable, Mapping

from ..errors import ConfigError

#: what a value may name, each filled in by the worker of each database
PLACEHOLDERS: tuple[str, ...] = ("dialect", "driver", "url")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: what SQLAlchemy uses when a URL names no driver
_DEFAULT_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg2", "mysql": "mysqldb"}


def parse_env(options: Iterable[str], table: Any) -> tuple[tuple[str, str], ...]:
    """``[tool.migration-harness.env]`` (``table``), then each ``--env NAME=VALUE`` (a flag wins over the file
    for the same name); every value's placeholders checked here, so a typo is a usage error before any database
    starts."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError("[tool.migration-harness.env] must be a table of NAME = \"value\"")
    pairs: dict[str, str] = {}
    for name, value in table.items():
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"[tool.migration-harness.env] {name}: give a string, not {value!r}")
        pairs[_checked_name(str(name), "[tool.migration-harness.env]")] = str(value).lower() if isinstance(
            value, bool) else str(value)
    for option in options:
        name, sep, value = option.partition("=")
        if not sep:
            raise ConfigError(f"--env {option}: give NAME=VALUE (e.g. --env DB_DRIVER={{driver}})")
        pairs[_checked_name(name.strip(), f"--env {option}")] = value
    for name, value in pairs.items():
        _check_placeholders(name, value)
    return tuple(pairs.items())


def _checked_name(name: str, where: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not an environment variable name (letters, digits, _)")
    return name


def _check_placeholders(name: str, value: str) -> None:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
    except ValueError as exc:
        raise ConfigError(f"env {name}={value}: {exc} (write a literal brace as {{{{ or }}}})") from exc
    unknown = [f for f in fields if f not in PLACEHOLDERS]
    if unknown:
        raise ConfigError(f"env {name}={value}: unknown placeholder {{{unknown[0]}}}: use "
                          + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))


def expand_env(pairs: Iterable[Iterable[str]], url: str, dialect: str) -> dict[str, str]:
    """The variables for the worker of ``dialect`` on the scratch database ``url``."""
    scheme = url.split("://", 1)[0]
    driver = scheme.split("+", 1)[1] if "+" in scheme else _DEFAULT_DRIVERS.get(dialect, "")
    values: Mapping[str, str] = {"dialect": dialect, "driver": driver, "url": url}
    return {name: value.format_map(values) for name, value in pairs}


__all__ = ["PLACEHOLDERS", "expand_env", "parse_env"]
