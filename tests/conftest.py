"""Shared test fixtures: real servers, a way to run the harness CLI, and the database lists to check cleanup.

Database servers for the tests (one per dialect per test session, each harness run makes its own scratch
databases on them, as the harness does for users):

* by default, one testcontainers container per dialect, from ``HARNESS_POSTGRESQL_IMAGE`` / ``HARNESS_MYSQL_IMAGE``
  (``.ci/run`` builds local images and sets these);
* with ``HARNESS_TEST_SERVERS=local``, the servers at ``HARNESS_TEST_POSTGRESQL_URL`` / ``HARNESS_TEST_MYSQL_URL``
  (default: the PostgreSQL and MariaDB on 127.0.0.1), which is quicker while developing.

The app's side: by default the worker runs in this interpreter (the harness installed beside the app). With
``HARNESS_TEST_APP_PYTHON`` (an interpreter's path, or the name of a stack of tests/stacks.py: ``2020``,
``newest``), every harness command a test starts that loads the app gets ``--python`` that interpreter (unless the
test gives its own), the projects get that stack's Flask-Migrate template, and :func:`release` answers for that
stack: the harness in its own venv, the app's in another (``nox -s isolated``).
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
LOCAL_URLS = {
    "postgresql": os.environ.get("HARNESS_TEST_POSTGRESQL_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
    "mysql": os.environ.get("HARNESS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/"),
}
IMAGES = {
    "postgresql": os.environ.get("HARNESS_POSTGRESQL_IMAGE", "postgres:16"),
    "mysql": os.environ.get("HARNESS_MYSQL_IMAGE", "mysql:8.4"),
}
ALL = ("sqlite", "postgresql", "mysql")


from stacks import app_python  # noqa: E402 (tests/ is on the path from here)

#: the app's interpreter (``HARNESS_TEST_APP_PYTHON``), or ``None`` for this one
APP_PYTHON = app_python()
#: the commands that load the app, so take ``--python``
APP_COMMANDS = ("run", "lint", "sql", "rehearse", "compat")


def _app_versions() -> dict[str, str]:
    """Every distribution's version in the app's environment (one probe, at collection)."""
    if APP_PYTHON is None:
        return {d.metadata["Name"]: d.version for d in metadata.distributions()}
    probe = ("import json, importlib.metadata as m; "
             "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    return json.loads(subprocess.run([APP_PYTHON, "-c", probe], check=True, capture_output=True, text=True).stdout)


APP_VERSIONS = {name.lower().replace("_", "-"): version for name, version in _app_versions().items()}


def release(distribution: str) -> tuple[int, ...]:
    """The (major, minor) of ``distribution`` in the app's environment (``HARNESS_TEST_APP_PYTHON``'s, else this
    one's): what the worker loads the app with."""
    return tuple(int(p) for p in APP_VERSIONS[distribution.lower().replace("_", "-")].split(".")[:2])


#: Whether autogenerate compares column types (and so compiles the models' types) with Flask-Migrate's env.py:
#: alembic 1.12+ does by default and Flask-Migrate 4+ asks for it; alembic 1.9 – 1.11 with Flask-Migrate 3.1 do
#: not, and there `flask db check` (so no_pending_autogenerate) sees no type difference at all.
AUTOGENERATE_COMPARES_TYPES = release("alembic") >= (1, 12) or release("Flask-Migrate") >= (4, 0)


@dataclass
class HarnessRun:
    """What one ``migration-harness run`` printed, returned and wrote."""

    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def database(self, dialect: str) -> dict[str, Any]:
        assert self.report is not None, f"no JSON report; stderr: {self.stderr}"
        return next(d for d in self.report["databases"] if d["dialect"] == dialect)

    def check(self, dialect: str, name: str) -> dict[str, Any]:
        return next(c for c in self.database(dialect)["checks"] if c["name"] == name)

    def statuses(self, name: str) -> dict[str, str]:
        assert self.report is not None, f"no JSON report; stderr: {self.stderr}"
        return {d["dialect"]: next((c["status"] for c in d["checks"] if c["name"] == name), "absent")
                for d in self.report["databases"]}


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a harness process a test starts: this checkout importable, and a run id of its own
    (``HARNESS_RUN_ID``) so the test can tell its containers and scratch databases from those of any other
    harness run sharing the Docker engine and the servers."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), full_env.get("PYTHONPATH")) if p)
    full_env.setdefault("HARNESS_RUN_ID", secrets.token_hex(4))
    return full_env


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``migration-harness ARGS``; the result's ``run_id`` is the run id it was given. A command that loads the app
    runs it in ``HARNESS_TEST_APP_PYTHON``'s interpreter when there is one (``--python``), unless ``args`` name one."""
    full_env = cli_env(env)
    if APP_PYTHON and args and args[0] in APP_COMMANDS and not any(a.startswith("--python") for a in args):
        args = [*args, "--python", APP_PYTHON]
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    proc.run_id = full_env["HARNESS_RUN_ID"]  # type: ignore[attr-defined]
    return proc


def run_containers(run_id: str) -> set[str]:
    """Ids of the containers harness run ``run_id`` labelled (running or not)."""
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=org.migration-harness.run={run_id}", "-q"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def list_databases(url: str) -> list[str]:
    """Every database on the server behind ``url``."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                return list(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
            return list(conn.execute(sa.text("SHOW DATABASES")).scalars())
    finally:
        engine.dispose()


def scratch_leftovers(url: str) -> list[str]:
    return [name for name in list_databases(url) if name.startswith("mharness_")]


@pytest.fixture(scope="session")
def server_urls() -> Iterator[dict[str, str]]:
    """Admin URLs of one PostgreSQL and one MySQL server for the whole session (see the module docstring)."""
    if os.environ.get("HARNESS_TEST_SERVERS") == "local":
        yield dict(LOCAL_URLS)
        return
    from harness.versions import container_class

    MySqlContainer = container_class("mysql", "MySqlContainer")
    PostgresContainer = container_class("postgres", "PostgresContainer")
    labels = {"org.migration-harness.test-session": "1"}
    pg = PostgresContainer(IMAGES["postgresql"], username="harness", password="pg-secret", dbname="postgres",
                           driver="psycopg2").with_kwargs(labels=labels)
    my = MySqlContainer(IMAGES["mysql"], dialect="pymysql", username="root", password="my-secret",
                        dbname="harness").with_kwargs(labels=labels)
    with pg, my:
        yield {"postgresql": pg.get_connection_url(), "mysql": my.get_connection_url()}


@pytest.fixture
def harness(server_urls: dict[str, str], tmp_path: Path):
    """Run the harness CLI in a project directory against the session's servers; parse the JSON report."""

    def run(project: Path, *args: str, db: tuple[str, ...] = ALL, env: dict[str, str] | None = None,
            use_servers: bool = True) -> HarnessRun:
        report_path = tmp_path / f"report-{len(list(tmp_path.glob('report-*.json')))}.json"
        full_env = dict(env or {})
        if use_servers:
            full_env.setdefault("HARNESS_POSTGRESQL_URL", server_urls["postgresql"])
            full_env.setdefault("HARNESS_MYSQL_URL", server_urls["mysql"])
        cmd = ["run", "--app", "app:create_app", "--json", str(report_path)]
        cmd += [f"--db={','.join(db)}"] if db else []
        servers = [d for d in ("postgresql", "mysql") if use_servers and d in db]
        proc = run_cli(cmd + list(args), project, full_env)
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        result = HarnessRun(proc.returncode, proc.stdout, proc.stderr, report)
        if report:
            assert report["run_id"] == proc.run_id
        for dialect in servers:  # every scratch database this run made is gone again (others' are not ours)
            left = [name for name in scratch_leftovers(server_urls[dialect]) if name.startswith(f"mharness_{proc.run_id}_")]
            assert not left, f"scratch databases left on {dialect}: {sorted(left)}"
        return result

    return run
