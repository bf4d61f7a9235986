"""[bad input] what a user gets wrong gets a clear verdict: a broken revision graph, bad options or a bad pyproject
are exit 2 with one line and nothing started or written; a server URL whose credentials are wrong, or whose user
may not create databases, is exit 3 (or ``skipped`` with ``--skip-unavailable``) with the reason in one line and
the password nowhere; and no run leaves a scratch database or a container behind.

Works against both kinds of test servers (see conftest): the containers require passwords; the local PostgreSQL
trusts 127.0.0.1 and accepts any password, so there a wrong password is tried with a role that does not exist.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from conftest import run_cli, scratch_leftovers
from projects import GOOD_MODELS, POSTS, USERS, Rev, good_chain, make_project

SERVERS = ("postgresql", "mysql")
WRONG_PASSWORD = "Wr0ngPa55-xyz"
NO_CREATE_USER = "mharness_nocreate"
NO_CREATE_PASSWORD = "np-secret-123"
RUN_LABEL = "org.migration-harness.run"
SCRATCH_NAME = re.compile(r"mharness_[0-9a-f]{8}_")


# -- running the CLI and checking that it left nothing --------------------------------------------------------

@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    report_text: str

    @property
    def everything(self) -> str:
        return self.stdout + self.stderr + self.report_text

    def database(self, dialect: str) -> dict[str, Any]:
        assert self.report is not None, self.stdout + self.stderr
        return next(d for d in self.report["databases"] if d["dialect"] == dialect)


def _containers() -> set[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label={RUN_LABEL}", "--format",
                          f'{{{{.ID}}}} {{{{.Label "{RUN_LABEL}"}}}}'], capture_output=True, text=True, check=True)
    return set(out.stdout.split("\n")) - {""}


def _scratch(server_urls: dict[str, str]) -> set[str]:
    """Scratch databases on both servers, and the harness's temporary directories (SQLite files, preflight)."""
    temporary = {f"tmp:{p.name}" for p in Path(tempfile.gettempdir()).iterdir() if SCRATCH_NAME.match(p.name)}
    return temporary | {f"{d}:{name}" for d in SERVERS for name in scratch_leftovers(server_urls[d])}


def _assert_nothing_new(before: set[str], now: Callable[[], set[str]], run_id: str, what: str) -> None:
    """Nothing in ``now()`` that was not in ``before`` and belongs to this run (others may share the servers)."""
    left = {a for a in now() - before if f"mharness_{run_id}_" in a or a.endswith(f" {run_id}")}
    assert not left, f"{what} left behind: {sorted(left)}"


def run_harness(project: Path, server_urls: dict[str, str], *args: str, db: str = "sqlite,postgresql,mysql",
                env: dict[str, str] | None = None) -> Outcome:
    """``migration-harness run`` in ``project`` against the session's servers (``env`` overrides), with a JSON
    report; asserts that no scratch database and no container of this run is left afterwards."""
    report_path = project.parent / f"{project.name}-report.json"
    report_path.unlink(missing_ok=True)
    full_env = {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"],
                **(env or {})}
    databases_before, containers_before = _scratch(server_urls), _containers()
    proc = run_cli(["run", "--app", "app:create_app", "--json", str(report_path), f"--db={db}", *args], project,
                   full_env, timeout=300)
    report_text = report_path.read_text() if report_path.exists() else ""
    report = json.loads(report_text) if report_text else None
    run_id = proc.run_id  # known in advance (HARNESS_RUN_ID), so only this run's things are looked at
    if report:
        assert report["run_id"] == run_id
    _assert_nothing_new(databases_before, lambda: _scratch(server_urls), run_id, "scratch databases")
    _assert_nothing_new(containers_before, _containers, run_id, "containers")
    return Outcome(proc.returncode, proc.stdout, proc.stderr, report, report_text)


def assert_usage_error(outcome: Outcome) -> str:
    """Exit 2: exactly one line, on stderr, saying what is wrong; nothing on stdout; no report. Returns the line."""
    assert outcome.exit_code == 2, (outcome.exit_code, outcome.stdout, outcome.stderr)
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.stderr
    lines = [line for line in (outcome.stdout + outcome.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n" + "\n".join(lines)
    assert outcome.stdout.strip() == "", outcome.stdout
    assert lines[0].startswith("migration-harness: error: "), lines[0]
    if outcome.report is not None:  # written (with --json): the reason, and no database
        assert (outcome.report["exit_code"], outcome.report["ok"], outcome.report["databases"]) == (2, False, [])
        assert outcome.report["error"] and outcome.report["error"] in lines[0]
    return lines[0]


def assert_unavailable_line(outcome: Outcome, dialect: str) -> str:
    """The database's reason is one line of the report, and printed whole on one line of the progress output."""
    message = outcome.database(dialect)["message"]
    assert message and "\n" not in message, repr(message)
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.stdout + outcome.stderr
    assert outcome.stderr.strip() == "", outcome.stderr
    progress = [line for line in outcome.stdout.splitlines() if line.startswith(dialect) and "(database)" in line]
    assert len(progress) == 1 and progress[0].endswith(message), (progress, message)
    return message


# -- servers: URLs with wrong credentials, a user who may not create databases ------------------------------------

def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def _accepts(url: str) -> bool:
    engine = _admin(url)
    try:
        with engine.connect():
            return True
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def wrong_credentials_url(admin_url: str) -> str:
    """The admin URL with a wrong password; where the server does not check passwords (PostgreSQL trusting
    127.0.0.1) for a role that does not exist, so that the server refuses it either way."""
    url = make_url(admin_url).set(password=WRONG_PASSWORD)
    if _accepts(url.render_as_string(hide_password=False)):
        url = url.set(username="mharness_no_such_role")
    assert not _accepts(url.render_as_string(hide_password=False))
    return url.render_as_string(hide_password=False)


def refusal(dialect: str, url: str) -> str:
    """What the server says, in its own words, when it refuses ``url``'s credentials."""
    if dialect == "mysql":
        return "Access denied for user"
    if make_url(url).username == "mharness_no_such_role":
        return 'role "mharness_no_such_role" does not exist'
    return "password authentication failed"


@contextmanager
def user_who_may_not_create_databases(dialect: str, admin_url: str) -> Iterator[str]:
    """A login with a password but without the right to create databases; its URL; dropped afterwards."""
    engine = _admin(admin_url)
    if dialect == "postgresql":
        create = [f"DROP ROLE IF EXISTS {NO_CREATE_USER}",
                  f"CREATE ROLE {NO_CREATE_USER} LOGIN PASSWORD '{NO_CREATE_PASSWORD}' NOCREATEDB NOCREATEROLE"]
        drop = [f"DROP ROLE IF EXISTS {NO_CREATE_USER}"]
        database = make_url(admin_url).database
    else:  # a user with only USAGE: it may log in, nothing more (not even see the container's own database)
        create = [f"DROP USER IF EXISTS '{NO_CREATE_USER}'@'%'",
                  f"CREATE USER '{NO_CREATE_USER}'@'%' IDENTIFIED BY '{NO_CREATE_PASSWORD}'"]
        drop = [f"DROP USER IF EXISTS '{NO_CREATE_USER}'@'%'"]
        database = None
    try:
        with engine.connect() as conn:
            for statement in create:
                conn.execute(sa.text(statement))
        admin = make_url(admin_url)
        url = URL.create(admin.drivername, NO_CREATE_USER, NO_CREATE_PASSWORD, admin.host, admin.port, database,
                         admin.query)
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            for statement in drop:
                conn.execute(sa.text(statement))
        engine.dispose()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p", good_chain(), GOOD_MODELS)


# -- a broken revision graph: exit 2, naming what to fix ----------------------------------------------------------

def test_syntax_error_in_a_migration_names_the_file(server_urls, tmp_path: Path) -> None:
    broken = replace(POSTS, upgrade='op.create_table("posts",\n    sa.Column("id", sa.Integer())\n')
    project = make_project(tmp_path / "p", [USERS, broken], GOOD_MODELS)
    line = assert_usage_error(run_harness(project, server_urls))
    assert "cannot read the revisions in " in line and "SyntaxError" in line, line
    assert "a002_create_posts.py" in line, line


def test_down_revision_that_does_not_exist_names_it(server_urls, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", [USERS, replace(POSTS, down_revision="zzz999")], GOOD_MODELS)
    line = assert_usage_error(run_harness(project, server_urls))
    assert "cannot read the revisions in " in line, line
    # what is missing, who refers to it, and that it is missing (docs/troubleshooting.md: "… is not present")
    assert "zzz999" in line and "a002" in line and "not present" in line, line


def test_cycle_in_the_revision_graph(server_urls, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", [replace(USERS, down_revision="a002"), POSTS], GOOD_MODELS)
    line = assert_usage_error(run_harness(project, server_urls))
    assert "cycle" in line.lower() and "a001" in line and "a002" in line, line


def test_migrations_directory_without_revisions(server_urls, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", [], GOOD_MODELS)
    line = assert_usage_error(run_harness(project, server_urls))
    assert "no revisions" in line and str(project / "migrations") in line, line


# -- wrong credentials, no right to create databases: exit 3, the reason in one line, no password --------------------

@pytest.mark.parametrize("dialect", SERVERS)
def test_wrong_password_exits_3_with_the_reason_and_never_shows_it(server_urls, project: Path, dialect: str) -> None:
    url = wrong_credentials_url(server_urls[dialect])
    outcome = run_harness(project, server_urls, db=dialect, env={f"HARNESS_{dialect.upper()}_URL": url})
    assert outcome.exit_code == 3, outcome.stdout + outcome.stderr
    message = assert_unavailable_line(outcome, dialect)
    assert outcome.database(dialect)["status"] == "error"
    assert "cannot connect to " in message and ":***@" in message, message
    assert refusal(dialect, url) in message, message
    assert WRONG_PASSWORD not in outcome.everything


@pytest.mark.parametrize("dialect", SERVERS)
def test_user_who_may_not_create_databases_exits_3(server_urls, project: Path, dialect: str) -> None:
    with user_who_may_not_create_databases(dialect, server_urls[dialect]) as url:
        outcome = run_harness(project, server_urls, db=dialect, env={f"HARNESS_{dialect.upper()}_URL": url})
    assert outcome.exit_code == 3, outcome.stdout + outcome.stderr
    message = assert_unavailable_line(outcome, dialect)
    assert "cannot create scratch database" in message and f"{NO_CREATE_USER}:***@" in message, message
    assert NO_CREATE_PASSWORD not in outcome.everything


@pytest.mark.parametrize("dialect", SERVERS)
def test_skip_unavailable_reports_wrong_credentials_as_skipped(server_urls, project: Path, dialect: str) -> None:
    url = wrong_credentials_url(server_urls[dialect])
    outcome = run_harness(project, server_urls, "--skip-unavailable", env={f"HARNESS_{dialect.upper()}_URL": url})
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert outcome.report["ok"] is True and outcome.report["exit_code"] == 0
    statuses = {d["dialect"]: d["status"] for d in outcome.report["databases"]}
    assert statuses == {"sqlite": "passed", "postgresql": "passed", "mysql": "passed", dialect: "skipped"}
    message = assert_unavailable_line(outcome, dialect)
    assert "cannot connect to " in message and refusal(dialect, url) in message, message
    assert WRONG_PASSWORD not in outcome.everything


# -- bad options and configuration: exit 2, one line ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-5", "-inf", "nan", "inf", "abc", ""])
def test_step_timeout_that_is_not_a_positive_number(server_urls, project: Path, value: str) -> None:
    line = assert_usage_error(run_harness(project, server_urls, f"--step-timeout={value}"))
    assert "step-timeout" in line or "step timeout" in line, line
    assert value in line, line


INVALID_PYPROJECTS = {
    "ignore rule without a reason": ('[[tool.migration-harness.ignore]]\ncheck = "data"\ntable = "users"\n',
                                     ("ignore rule", "users", "reason")),
    "ignore rule with an empty reason": ('[[tool.migration-harness.ignore]]\ncheck = "data"\nreason = ""\n',
                                         ("ignore rule", "data", "reason")),
    "ignore that is not a list of tables": ('[tool.migration-harness]\nignore = "users"\n', ("ignore",)),
    "malformed TOML": ('[tool.migration-harness\napp = "app:create_app"\n', ("pyproject.toml", "line 1")),
}


@pytest.mark.parametrize("case", INVALID_PYPROJECTS)
def test_invalid_pyproject(server_urls, project: Path, case: str) -> None:
    text, expected = INVALID_PYPROJECTS[case]
    (project / "pyproject.toml").write_text(text)
    line = assert_usage_error(run_harness(project, server_urls))
    for words in expected:
        assert words in line, (words, line)


def _branch(revision: str, table: str) -> Rev:
    return Rev(revision, f"create {table}", f"""
    op.create_table("{table}", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_{table}")))
""", f'op.drop_table("{table}")', down_revision="a002")


@pytest.mark.parametrize("start, end", [("a002", "a001"), ("a003", "a004")], ids=["descendant", "other-branch"])
def test_from_that_is_not_an_ancestor_of_to(server_urls, tmp_path: Path, start: str, end: str) -> None:
    chain = good_chain() + [_branch("a003", "tags"), _branch("a004", "notes")]
    project = make_project(tmp_path / "p", chain, GOOD_MODELS)
    line = assert_usage_error(run_harness(project, server_urls, "--from", start, "--to", end,
                                          "--allow-multiple-heads"))
    assert f"--from {start} is not an ancestor of --to {end}" in line, line


# -- output for people and for pipes ---------------------------------------------------------------------------

def test_json_to_stdout_quiet_and_no_color(tmp_path: Path) -> None:
    """``--json -`` writes the report to stdout (the text goes to stderr), ``-q`` prints only the verdict, and
    NO_COLOR / FORCE_COLOR decide the colours whatever the terminal."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    args = ["run", "--app", "app:create_app", "--db", "sqlite", "--checks", "upgrade"]
    proc = run_cli(args + ["--json", "-"], project)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and "every check passed" in proc.stderr
    import sqlalchemy

    from harness import __version__
    assert report["harness_version"] == __version__ and report["started_at"].endswith("+00:00")
    assert report["versions"]["SQLAlchemy"] == sqlalchemy.__version__
    assert set(report["versions"]) >= {"python", "Flask", "Flask-SQLAlchemy", "Flask-Migrate", "alembic", "PyMySQL"}
    assert not (project / "-").exists()
    quiet = run_cli(args + ["-q"], project, {"FORCE_COLOR": "1"})
    assert quiet.returncode == 0 and quiet.stdout.strip().endswith("every check passed\x1b[0m"), repr(quiet.stdout)
    assert len(quiet.stdout.strip().splitlines()) == 1
    plain = run_cli(args, project, {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout and "every check passed" in plain.stdout


def test_plain_progress_a_line_per_step_and_per_check(tmp_path: Path) -> None:
    """Not a terminal (a CI log): one plain line per step as it starts, one per check as it ends, no control
    characters; -q drops them."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite", "--checks", "upgrade,downgrade"], project)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout
    steps = [line.split() for line in lines if line.split()[2:3] in (["up"], ["down"])]
    assert [s[:6] for s in steps] == [
        ["sqlite", "upgrade", "up", "1/2", "a001", "create"], ["sqlite", "upgrade", "up", "2/2", "a002", "create"],
        ["sqlite", "downgrade", "down", "2/2", "a002", "create"], ["sqlite", "downgrade", "down", "1/2", "a001", "create"]]
    assert any(line.split()[:3] == ["sqlite", "upgrade", "passed"] for line in lines)
    quiet = run_cli(["run", "--app", "app:create_app", "--db", "sqlite", "--checks", "upgrade", "-q"], project)
    assert quiet.stdout.strip() == "every check passed"
    verbose = run_cli(["run", "--app", "app:create_app", "--db", "sqlite", "--checks", "upgrade", "-v"], project)
    sql = [line.split(None, 2)[2] for line in verbose.stdout.splitlines() if line.split()[1:2] == ["sql"]]
    assert any(s.startswith("CREATE TABLE users") for s in sql) and any(s.startswith("CREATE TABLE posts") for s in sql)
    assert not any("sqlite_master" in s for s in sql)  # the harness's own catalogue queries are not the step's


def test_on_a_terminal_the_steps_show_live(tmp_path: Path) -> None:
    """On a terminal (a pseudo-terminal here): a live line per database with a spinner, the step as it happens
    and the elapsed time, while each check's verdict is printed above it."""
    import os
    import pty
    import sys

    from conftest import cli_env
    from projects import Rev

    slow = Rev("a003", "slow step", "import time\ntime.sleep(1.5)", "pass")
    project = make_project(tmp_path / "p", good_chain() + [slow], GOOD_MODELS)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--app", "app:create_app", "--db", "sqlite",
                             "--checks", "upgrade"], cwd=project, env={**cli_env(), "COLUMNS": "120"},
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    out = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in out  # a terminal gets the live display's control sequences
    assert "upgrade up 3/3  a003 slow step" in out  # the step as it happens
    assert any(frame in out for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # the spinner
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "upgrade                  passed" in plain and "every check passed" in plain
