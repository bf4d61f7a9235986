"""[shapes §4] What a new user trips on: the verdict of a run that skipped a database, an unnamed constraint that
cannot be dropped, a typo in --db / --checks, reports' file modes, a CI log of three databases, and the pytest
plugin with -k. Real runs on real databases."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import cli_env, run_cli
from projects import APP_PY, GOOD_MODELS, Rev, good_chain, make_project

UNREACHABLE_PG = "postgresql+psycopg2://postgres@127.0.0.1:1/postgres"


def test_a_skipped_database_is_named_in_the_verdict(harness, tmp_path: Path) -> None:
    """--skip-unavailable with PostgreSQL unreachable: exit 0, but the last line says what was verified and what
    was not, never "every check passed"; the Markdown heading says the same. In a CI log each database's checks
    come together again at the end, in the order of --db."""
    md = tmp_path / "r.md"
    run = harness(make_project(tmp_path / "p", good_chain(), GOOD_MODELS), "--skip-unavailable", "--checks",
                  "upgrade,downgrade", "--markdown", str(md), db=("mysql", "sqlite", "postgresql"),
                  env={"HARNESS_POSTGRESQL_URL": UNREACHABLE_PG})
    assert run.exit_code == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last == "passed on mysql, sqlite; postgresql skipped: unavailable"
    assert "every check passed" not in run.stdout
    assert md.read_text().splitlines()[0] == "## migration-harness: ✅ passed on mysql, sqlite; postgresql skipped: unavailable"
    lines = run.stdout.splitlines()
    # the starting lines align with the step and check lines
    assert any(line.startswith("postgresql" + " " * 27 + "starting (server URL)") for line in lines)
    blocks = [line for line in lines if line and line[0] != " " and line.endswith(")") and "starting" not in line
              and not line.startswith("Summary")]
    assert [b.split()[0] for b in blocks] == ["mysql", "sqlite", "postgresql"], blocks
    start = lines.index(blocks[0])
    assert lines[start + 1].split()[:2] == ["upgrade", "passed"] and lines[start + 2].split()[:2] == ["downgrade", "passed"]
    # and when every database was verified, the verdict is the usual one
    run = harness(make_project(tmp_path / "q", good_chain(), GOOD_MODELS), "--skip-unavailable", "--checks",
                  "upgrade", db=("sqlite", "postgresql"))
    assert run.exit_code == 0 and run.stdout.strip().splitlines()[-1] == "every check passed", run.stdout


def _unnamed_project(root: Path, named: bool) -> Path:
    """An app without a naming convention whose a003 adds a unique constraint in batch mode, as
    ``flask db migrate`` writes it: unnamed (the defect), or named (the fix)."""
    name = "'uq_users_name'" if named else "None"
    unique = Rev("a003", "unique name", f"""
        with op.batch_alter_table("users") as batch_op:
            batch_op.create_unique_constraint({name}, ["name"])
    """, f"""
        with op.batch_alter_table("users") as batch_op:
            batch_op.drop_constraint({name}, type_="unique")
    """)
    models = GOOD_MODELS.replace("name = db.Column(sa.String(80), nullable=False)",
                                 "name = db.Column(sa.String(80), nullable=False, unique=True)")
    project = make_project(root, good_chain() + [unique], models)
    (project / "app.py").write_text(APP_PY.replace("SQLAlchemy(metadata=MetaData(naming_convention=NAMING))",
                                                   "SQLAlchemy()"))
    return project


def test_an_unnamed_constraint_says_it_has_no_name_on_every_database(harness, tmp_path: Path) -> None:
    """MySQL's alembic dialect fails ``drop_constraint(None, ...)`` with a bare AssertionError, PostgreSQL with
    "it has no name", SQLite's batch mode already at the create: on every database the user reads that the
    constraint has no name, where, and the fix. With the constraint named, the same chain passes everywhere."""
    run = harness(_unnamed_project(tmp_path / "bad", named=False), "--checks", "upgrade,downgrade")
    assert run.exit_code == 1, run.stdout + run.stderr
    for dialect in ("postgresql", "mysql"):
        check = run.check(dialect, "downgrade")
        assert check["status"] == "failed" and check["revision"] == "a003", check
        assert check["message"].startswith(f"downgrade of a003 (unique name) to a002 failed on {dialect}: "
                                           "drop_constraint(None, 'users') (at a003_unique_name.py:")
        assert "it has no name" in check["message"] and "naming convention" in check["message"]
        assert "AssertionError" not in check["message"] and "CompileError" not in check["message"]
        assert run.check(dialect, "upgrade")["status"] == "passed"
    sqlite = run.check("sqlite", "upgrade")
    assert sqlite["status"] == "failed" and sqlite["revision"] == "a003"
    assert "it has no name" in sqlite["message"] and "naming convention" in sqlite["message"]
    assert "AssertionError" not in run.stdout
    good = harness(_unnamed_project(tmp_path / "good", named=True), "--checks", "upgrade,downgrade")
    assert good.exit_code == 0, good.stdout + good.stderr


@pytest.mark.fast
@pytest.mark.parametrize(("args", "hint"), [
    (["--db", "sqlite,postgres"], "unknown database 'postgres' (did you mean 'postgresql'?)"),
    (["--db", "mariadb"], "unknown database 'mariadb' (did you mean 'mysql'?)"),
    (["--checks", "upgrade,stairways"], "unknown check(s) stairways (did you mean 'stairway'?)"),
    (["--checks", "schema"], "unknown check(s) schema (did you mean 'schema_matches_models'?)"),
    (["--ignore-check", "data@postgre"], "unknown database 'postgre' (did you mean 'postgresql'?)"),
])
def test_a_typo_gets_did_you_mean(tmp_path: Path, args: list[str], hint: str) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", *args], project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and hint in proc.stderr, proc.stderr


@pytest.mark.fast
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_reports_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """Reports are read by CI artifact uploaders and other users: their mode is what the umask gives any new file,
    not mkstemp's 0600."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    out = tmp_path / "out"
    paths = {"--json": out / "r.json", "--junit": out / "r.xml", "--markdown": out / "r.md", "--html": out / "r.html"}
    args = [part for flag, path in paths.items() for part in (flag, str(path))]
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--app", "app:create_app", "--db", "sqlite",
                           "--checks", "upgrade", *args], cwd=project, env=cli_env(), capture_output=True, text=True,
                          timeout=300, umask=umask)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in paths.values():
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask), path


class _Listener:
    """A TCP port that records whether anything connected to it (a database the harness started would)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def test_pytest_k_starts_only_the_selected_databases(tmp_path: Path) -> None:
    """``pytest --migrations -k sqlite``: PostgreSQL and MySQL items are deselected, so neither server is asked
    for anything (their URLs point at a port that counts connections), and the header counts every item:
    collected 6, 4 deselected, 2 selected (it said "-4 selected")."""
    pg, my = _Listener(), _Listener()
    env = {**cli_env(), "HARNESS_POSTGRESQL_URL": f"postgresql://postgres@127.0.0.1:{pg.port}/postgres",
           "HARNESS_MYSQL_URL": f"mysql://root@127.0.0.1:{my.port}/"}
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    base = [sys.executable, "-m", "pytest", "--migrations", "--migrations-app", "app:create_app",
            "--migrations-checks", "upgrade,downgrade", "-p", "no:cacheprovider"]
    proc = subprocess.run(base + ["-k", "sqlite"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "collected 6 items / 4 deselected / 2 selected" in proc.stdout, proc.stdout
    assert "2 passed, 4 deselected" in proc.stdout
    assert pg.connections == 0 and my.connections == 0
    # the same run without -k does ask both servers (the listeners are no databases: those items fail)
    proc = subprocess.run(base, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "2 passed" in proc.stdout, proc.stdout + proc.stderr
    assert pg.connections > 0 and my.connections > 0
