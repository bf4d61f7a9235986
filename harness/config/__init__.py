"""Run settings: flags over environment over ``[tool.migration-harness]`` in pyproject.toml over defaults.

Beside the settings: which Python runs the worker (:mod:`.interpreter`), the app's environment variables per database
(:mod:`.app_vars`) and the secrets a URL holds, hidden wherever it is shown (:mod:`.redact`); standard library only,
since the worker imports them too. Layer: it may import the plain modules ``errors``, ``results``, ``versions``,
``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .app_vars import parse_env
from ..errors import ConfigError
from .interpreter import resolve_python

DIALECTS: tuple[str, ...] = ("sqlite", "postgresql", "mysql")
DEFAULT_IMAGES: Mapping[str, str] = {"postgresql": "postgres:16", "mysql": "mysql:8.4"}
DEFAULT_STEP_TIMEOUT_S = 300.0
DEFAULT_LOCK_TIMEOUT_S = 60.0
#: ``--baseline`` values (see :mod:`harness.checks.baseline`)
BASELINES: tuple[str, ...] = ("create-all",)
#: every check, in the order a database runs them
CHECK_NAMES: tuple[str, ...] = ("single_head", "upgrade", "schema_matches_models", "no_pending_autogenerate",
                                "downgrade", "leaves_no_trace", "stairway", "data")


@dataclass(frozen=True)
class DatabaseSettings:
    """How to provide one database: a container from ``image``, or a scratch database on the server at ``url``."""

    dialect: str
    image: str | None = None
    url: str | None = None
    #: the oldest server version the app supports, e.g. (14,) or (8, 0); an older server is "unavailable"
    min_version: tuple[int, ...] | None = None
    #: the size of a throwaway container's data directory (a tmpfs), e.g. ``2g``; ``None``: Docker's default
    #: (half the machine's memory). ``--tmpfs-size`` / ``HARNESS_TMPFS_SIZE`` / ``tmpfs_size``
    tmpfs_size: str | None = None


@dataclass(frozen=True)
class IgnoreRule:
    """Ignore what matches every field given (``None`` matches anything), and say why in the report.

    With only ``check`` (and maybe ``database``) it ignores the whole check; with ``table`` / ``object`` /
    ``name`` it moves matching differences to the check's ``ignored`` list. Nothing ignored is ever dropped.
    """

    reason: str
    check: str | None = None
    database: str | None = None
    table: str | None = None
    object: str | None = None
    name: str | None = None
    aspect: str | None = None  # e.g. "server_default": defaults a migration set to fill rows, not in the models

    @property
    def whole_check(self) -> bool:
        return self.table is None and self.object is None and self.name is None and self.aspect is None

    def applies_to(self, check: str, dialect: str) -> bool:
        return self.check in (None, check) and self.database in (None, dialect)

    def matches(self, difference: dict[str, Any]) -> bool:
        return all(want is None or difference.get(key) == want
                   for key, want in (("table", self.table), ("object", self.object), ("name", self.name),
                                     ("aspect", self.aspect)))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IgnoreRule:
        unknown = set(data) - {"reason", "check", "database", "table", "object", "name", "aspect"}
        if unknown:
            raise ConfigError(f"ignore rule {data}: unknown key(s) {', '.join(sorted(unknown))}")
        if not data.get("reason"):
            raise ConfigError(f"ignore rule {data}: give a reason (it is shown in the report)")
        return cls(**data)


def parse_ignore_check(value: str) -> IgnoreRule:
    """``--ignore-check NAME[@DATABASE]``."""
    check, _, database = value.partition("@")
    if database and database not in DIALECTS:
        raise ConfigError(f"--ignore-check {value}: unknown database {database!r}"
                          f"{did_you_mean(database, DIALECTS + _DIALECT_ALIASES)}")
    return IgnoreRule(reason=f"--ignore-check {value}", check=check, database=database or None)


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``migration-harness run`` needs, already validated."""

    app: str
    migrations: str | None = None
    databases: tuple[DatabaseSettings, ...] = ()
    json_path: str | None = None
    skip_unavailable: bool = False
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    ignore: tuple[IgnoreRule, ...] = ()
    checks: tuple[str, ...] = CHECK_NAMES
    from_revision: str | None = None
    to_revision: str | None = None
    #: ``--since REF``: revisions that exist at the git ref REF are only applied, the others checked
    since: str | None = None
    allow_multiple_heads: bool = False
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    cwd: str = field(default_factory=os.getcwd)
    #: given by ``HARNESS_RUN_ID`` (8 hex digits) to know the run's names in advance; else a random one per run
    run_id: str | None = None
    #: report every SQL statement the migration steps run (``-v``)
    echo_sql: bool = False
    #: the app's interpreter, which runs the worker (``--python``); ``None``: the harness's own
    python: str | None = None
    #: how the scratch database starts (``--baseline``): ``None`` empty, ``"create-all"`` the models' tables
    #: (``db.create_all()``) stamped at head, then the window is checked from head down and back up
    baseline: str | None = None
    #: variables set in each database's worker before the app loads, ``{dialect}`` / ``{driver}`` / ``{url}``
    #: filled in there (``--env NAME=VALUE``, ``[tool.migration-harness.env]``)
    env: tuple[tuple[str, str], ...] = ()
    #: check each bind of a multi-database app on a scratch database of its own (``--multidb``); found by itself
    #: when the app's env.py is Flask-Migrate's multidb template
    multidb: bool = False


#: what people call the databases, as (alias, name): ``postgres``, ``pg``, ``mariadb``
_ALIASES: dict[str, str] = {"postgres": "postgresql", "pg": "postgresql", "psql": "postgresql", "mariadb": "mysql",
                            "sqlite3": "sqlite"}
_DIALECT_ALIASES: tuple[str, ...] = tuple(_ALIASES)


def did_you_mean(name: str, choices: tuple[str, ...]) -> str:
    """`` (did you mean 'postgresql'?)`` for a close name (or a common alias), else ``""``."""
    name = name.lower()
    close = [c for c in choices if name and name in c] if len(name) >= 4 else []
    close = close if len(close) == 1 else difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {_ALIASES.get(close[0], close[0])!r}?)"


def parse_database_names(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Split repeatable, comma-separated ``--db`` values; keep order, drop duplicates, reject unknown names."""
    names: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            if name not in DIALECTS:
                raise ConfigError(f"unknown database {name!r}{did_you_mean(name, DIALECTS + _DIALECT_ALIASES)}: "
                                  f"choose from {', '.join(DIALECTS)}")
            if name not in names:
                names.append(name)
    return tuple(names)


def parse_version(text: Any, dialect: str) -> tuple[int, ...]:
    """``"14"`` / ``"8.0"`` / ``"10.11.2"`` as a tuple of ints."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError as exc:
        raise ConfigError(f"{dialect} min_version must look like 14 or 8.0, not {text!r}") from exc


def _seconds(what: str, flag: float | None, env: str | None, file: Any, default: float) -> float:
    """A positive number of seconds from the first source that gives one."""
    raw = next((v for v in (flag, env, file) if v not in (None, "")), default)
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be a number of seconds, not {raw!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a finite number of seconds above 0, not {raw!r}")
    return value


def parse_check_names(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``--checks a,b``: known names only, returned in the order the harness runs them."""
    names = {n.strip() for v in values for n in v.split(",") if n.strip()}
    unknown = sorted(names - set(CHECK_NAMES))
    if unknown:
        named = ", ".join(name + did_you_mean(name, CHECK_NAMES) for name in unknown)
        raise ConfigError(f"unknown check(s) {named}: choose from {', '.join(CHECK_NAMES)}")
    return tuple(n for n in CHECK_NAMES if n in names)


def read_pyproject(cwd: str) -> dict[str, Any]:
    """The ``[tool.migration-harness]`` table of ``pyproject.toml`` in ``cwd``, or ``{}``."""
    path = Path(cwd) / "pyproject.toml"
    if not path.is_file():
        return {}
    from ..versions import tomllib  # tomli on Python 3.9 / 3.10: the harness's own dependency, never the worker's

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    table = data.get("tool", {}).get("migration-harness", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.migration-harness] must be a table")
    return table


def _section(file: dict[str, Any], name: str) -> dict[str, Any]:
    """``[tool.migration-harness.<name>]``, or ``{}`` when absent or not a table."""
    section = file.get(name, {})
    return section if isinstance(section, dict) else {}


def server_urls(cwd: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Server URLs given for PostgreSQL / MySQL (environment over pyproject), for commands like ``clean``."""
    env = os.environ if environ is None else environ
    file = read_pyproject(cwd or os.getcwd())
    urls = {}
    for name in ("postgresql", "mysql"):
        section = _section(file, name)
        url = env.get(f"HARNESS_{name.upper()}_URL") or section.get("url")
        if url:
            urls[name] = url
    return urls


def default_app(cwd: str) -> str | None:
    """What ``flask`` uses when no ``--app`` is given: ``FLASK_APP`` from ``.flaskenv`` / ``.env`` (python-dotenv
    loads them for ``flask``), else ``wsgi.py`` or ``app.py`` in the working directory."""
    for name in (".env", ".flaskenv"):  # .env wins over .flaskenv, as for flask
        value = _dotenv_value(Path(cwd) / name, "FLASK_APP")
        if value:
            return value
    return next((name for name in ("wsgi.py", "app.py") if (Path(cwd) / name).is_file()), None)


def _dotenv_value(path: Path, key: str) -> str | None:
    """``key`` from a dotenv file (``KEY=value``, optionally ``export`` and quotes), or None."""
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and name.strip() == key:
            return value.split(" #", 1)[0].strip().strip("'\"") or None
    return None


def build_config(
    *,
    app: str | None = None,
    migrations: str | None = None,
    db: tuple[str, ...] = (),
    json_path: str | None = None,
    skip_unavailable: bool = False,
    step_timeout_s: float | None = None,
    ignore_tables: tuple[str, ...] = (),
    ignore_checks: tuple[str, ...] = (),
    checks: tuple[str, ...] = (),
    from_revision: str | None = None,
    to_revision: str | None = None,
    since: str | None = None,
    allow_multiple_heads: bool | None = None,
    lock_timeout_s: float | None = None,
    echo_sql: bool = False,
    tmpfs_size: str | None = None,
    python: str | None = None,
    baseline: str | None = None,
    env_vars: tuple[str, ...] = (),
    multidb: bool | None = None,
    cwd: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunConfig:
    """Merge flags (the keyword arguments), the environment and pyproject.toml into a :class:`RunConfig`."""
    cwd = cwd or os.getcwd()
    env = os.environ if environ is None else environ
    file = read_pyproject(cwd)

    app = app or env.get("HARNESS_APP") or file.get("app") or env.get("FLASK_APP") or default_app(cwd)
    if not app:
        raise ConfigError("no app given: pass --app MODULE[:NAME], set FLASK_APP (or in .flaskenv), set app in "
                          "pyproject.toml, or have a wsgi.py or app.py here")

    names = parse_database_names(db) if db else parse_database_names(list(file.get("databases", DIALECTS)))
    if not names:
        raise ConfigError("no database selected")

    tmpfs = tmpfs_size or env.get("HARNESS_TMPFS_SIZE") or file.get("tmpfs_size") or None
    if tmpfs is not None and not re.fullmatch(r"[1-9][0-9]*[kmg]?", str(tmpfs).lower()):
        raise ConfigError(f"tmpfs size must look like 512m or 2g, not {tmpfs!r}")
    databases = []
    for name in names:
        section = _section(file, name)
        upper = name.upper()
        image = env.get(f"HARNESS_{upper}_IMAGE") or section.get("image") or DEFAULT_IMAGES.get(name)
        url = env.get(f"HARNESS_{upper}_URL") or section.get("url")
        minimum = env.get(f"HARNESS_{upper}_MIN_VERSION") or section.get("min_version")
        databases.append(DatabaseSettings(dialect=name, image=image if name != "sqlite" else None, url=url or None,
                                          min_version=parse_version(minimum, name) if minimum else None,
                                          tmpfs_size=str(tmpfs).lower() if tmpfs else None))

    timeout = _seconds("step timeout", step_timeout_s, env.get("HARNESS_STEP_TIMEOUT"), file.get("step_timeout"),
                       DEFAULT_STEP_TIMEOUT_S)
    lock_timeout = _seconds("lock timeout", lock_timeout_s, env.get("HARNESS_LOCK_TIMEOUT"), file.get("lock_timeout"),
                            DEFAULT_LOCK_TIMEOUT_S)

    selected = parse_check_names(checks or tuple(file.get("checks", ())) or CHECK_NAMES)
    if allow_multiple_heads is None:
        allow_multiple_heads = bool(file.get("allow_multiple_heads", False))

    ignore = file.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(r, dict) for r in ignore):
        raise ConfigError("[tool.migration-harness] ignore must be a list of tables: [[tool.migration-harness.ignore]]")
    rules = [IgnoreRule.from_dict(dict(r)) for r in ignore]
    rules += [IgnoreRule(reason=f"--ignore-table {t}", table=t) for t in ignore_tables]
    rules += [parse_ignore_check(c) for c in ignore_checks]

    run_id = env.get("HARNESS_RUN_ID") or None
    if run_id is not None and not re.fullmatch(r"[0-9a-f]{8}", run_id):
        raise ConfigError(f"HARNESS_RUN_ID must be 8 lowercase hex digits (e.g. 0badc0de), not {run_id!r}")

    interpreter = resolve_python(python, env, file.get("python"), cwd)
    if since is not None and (not since.strip() or from_revision):
        raise ConfigError("--since needs a git ref (e.g. origin/main)" if not since.strip()
                          else "--since and --from both say where the checks start: give one of them")
    start = baseline or env.get("HARNESS_BASELINE") or file.get("baseline") or None
    if start is not None and start not in BASELINES:
        raise ConfigError(f"unknown baseline {start!r}{did_you_mean(str(start), BASELINES)}: choose from "
                          f"{', '.join(BASELINES)} (or none: the chain starts from an empty database)")

    if multidb is None:
        multidb = bool(file.get("multidb", False))

    return RunConfig(
        multidb=multidb,
        python=interpreter,
        baseline=start,
        env=parse_env(env_vars, file.get("env")),
        run_id=run_id,
        echo_sql=echo_sql,
        app=app,
        migrations=migrations or file.get("migrations"),
        databases=tuple(databases),
        json_path=json_path,
        skip_unavailable=skip_unavailable,
        step_timeout_s=timeout,
        ignore=tuple(rules),
        checks=selected,
        from_revision=from_revision,
        to_revision=to_revision,
        since=since,
        allow_multiple_heads=allow_multiple_heads,
        lock_timeout_s=lock_timeout,
        cwd=cwd,
    )


__all__ = ["CHECK_NAMES", "DIALECTS", "DatabaseSettings", "IgnoreRule", "RunConfig", "build_config", "parse_database_names"]
