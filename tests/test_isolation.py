"""The harness in its own venv, the app's side in the app's own interpreter (``--python``).

The harness here is this test session's interpreter; each app stack is a venv of its own holding only the app's
packages (tests/stacks.py: built once, cached outside the repository). Every run must leave that venv exactly as
it was (``pip freeze``), give the verdicts the stack deserves, and say in one line what stops it.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALL, run_cli
from projects import GOOD_MODELS, Rev, flask_migrate_template, good_chain, make_project
from stacks import STACK_2020, STACK_BELOW_FLOOR, STACK_NEWEST, STACK_NO_DRIVERS, freeze, stack_python


@pytest.fixture(scope="session")
def py2020() -> Path:
    return stack_python("3.9", STACK_2020)


@pytest.fixture(scope="session")
def py_newest() -> Path:
    return stack_python("3.13", STACK_NEWEST)


def _project(root: Path, python: Path, revisions: list[Rev] | None = None, models: str = GOOD_MODELS) -> Path:
    """A project whose migrations directory is the stack's own Flask-Migrate template (env.py differs by release)."""
    return make_project(root, revisions or good_chain(), models, template=flask_migrate_template(str(python)))


#: a column MySQL refuses (VARCHAR needs a length there); SQLite and PostgreSQL accept it
UNSIZED = Rev("a003", "add users.nick", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("nick", sa.String(), nullable=True))
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("nick")
""")


def test_a_2020_stack_passes_through_python_and_keeps_its_pins(harness, tmp_path: Path, py2020: Path) -> None:
    """Flask 1.1 / Flask-SQLAlchemy 2.4 / Flask-Migrate 2.5 / alembic 1.4 / SQLAlchemy 1.3 on Python 3.9: every
    check passes on all three databases, the worker ran on that stack, and not one pin moved."""
    before = freeze(py2020)
    run = harness(_project(tmp_path / "p", py2020), "--python", str(py2020))
    assert run.exit_code == 0, run.stdout + run.stderr
    for dialect in ALL:
        assert {c["status"] for c in run.database(dialect)["checks"]} == {"passed"}, run.database(dialect)
    assert run.report["versions"]["SQLAlchemy"] == "1.3.24" and run.report["versions"]["python"].startswith("3.9.")
    assert run.report["versions"]["Flask-Migrate"] == "2.5.3"
    assert run.report["harness_versions"]["SQLAlchemy"] != "1.3.24"
    assert freeze(py2020) == before


def test_a_2020_stack_fails_on_exactly_the_database_that_refuses_a_step(harness, tmp_path: Path,
                                                                        py2020: Path) -> None:
    """The same stack, a chain MySQL cannot run (``String()`` without a length): upgrade fails on mysql at a003,
    and only there."""
    models = GOOD_MODELS.replace('name = db.Column(sa.String(80), nullable=False)',
                                 'name = db.Column(sa.String(80), nullable=False)\n    nick = db.Column(sa.String)')
    before = freeze(py2020)
    run = harness(_project(tmp_path / "p", py2020, [*good_chain(), UNSIZED], models), "--python", str(py2020))
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.statuses("upgrade") == {"sqlite": "passed", "postgresql": "passed", "mysql": "failed"}
    assert run.check("mysql", "upgrade")["revision"] == "a003"
    assert "VARCHAR requires a length" in run.check("mysql", "upgrade")["message"]
    assert freeze(py2020) == before


def test_the_newest_stack_passes_through_python_and_keeps_its_pins(harness, tmp_path: Path, py_newest: Path) -> None:
    before = freeze(py_newest)
    run = harness(_project(tmp_path / "p", py_newest), "--python", str(py_newest))
    assert run.exit_code == 0, run.stdout + run.stderr
    for dialect in ALL:
        assert {c["status"] for c in run.database(dialect)["checks"]} == {"passed"}, run.database(dialect)
    assert run.report["versions"]["python"].startswith("3.13.")
    assert freeze(py_newest) == before


def test_sql_and_lint_take_python_too(tmp_path: Path, py2020: Path) -> None:
    """The rollout commands load the app in its interpreter as well: sql renders offline SQL on the 2020 stack."""
    project = _project(tmp_path / "p", py2020)
    before = freeze(py2020)
    done = run_cli(["sql", "--app", "app:create_app", "--python", str(py2020), "--sql-dir", str(tmp_path / "sql")],
                   project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CREATE TABLE users" in (tmp_path / "sql" / "postgresql" / "0001_a001.sql").read_text()
    assert freeze(py2020) == before


def test_the_active_virtualenv_and_pyproject_choose_the_interpreter(harness, tmp_path: Path, py2020: Path) -> None:
    """No --python: ``python`` in pyproject.toml, else $VIRTUAL_ENV (when it is not the harness's own)."""
    project = _project(tmp_path / "p", py2020)
    by_venv = harness(project, db=("sqlite",), env={"VIRTUAL_ENV": str(py2020.parent.parent)})
    assert by_venv.exit_code == 0 and by_venv.report["versions"]["SQLAlchemy"] == "1.3.24", by_venv.stderr
    (project / "pyproject.toml").write_text(f'[tool.migration-harness]\npython = "{py2020}"\n')
    by_file = harness(project, db=("sqlite",))
    assert by_file.exit_code == 0 and by_file.report["versions"]["SQLAlchemy"] == "1.3.24", by_file.stderr


def _fake(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.mark.parametrize("case", ["missing", "not-python", "python-3.8"])
def test_an_unusable_python_is_one_line_before_anything_starts(tmp_path: Path, case: str) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    python = {"missing": lambda: tmp_path / "nowhere" / "python",
              "not-python": lambda: _fake(tmp_path / "python", "exit 0"),
              "python-3.8": lambda: _fake(tmp_path / "python", "printf '3.8.18 /usr'")}[case]()
    expected = {"missing": "no such file", "not-python": "not a Python interpreter",
                "python-3.8": "is Python 3.8.18; the harness's worker needs Python 3.9 or newer"}[case]
    for command in (["run"], ["lint", "--no-observe"], ["sql", "--sql-dir", str(tmp_path / "sql")]):
        done = run_cli([*command, "--app", "app:create_app", "--python", str(python)], project)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"migration-harness: error: --python {python}{' ' if case == 'python-3.8' else ': '}"
                                   f"{expected}"), lines


_NO_SERVER = {"HARNESS_POSTGRESQL_URL": "postgresql+psycopg2://nobody@127.0.0.1:9/x",
              "HARNESS_MYSQL_URL": "mysql+pymysql://nobody@127.0.0.1:9/x"}


def test_a_stack_below_the_floor_is_one_line_before_any_database(tmp_path: Path) -> None:
    """alembic 1.3 is older than the worker supports: the preflight says so (package, version, the oldest
    supported) and exits 2; the servers (here unreachable) are never contacted, so no database started."""
    python = stack_python("3.9", STACK_BELOW_FLOOR)
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS, template=flask_migrate_template(str(python)))
    before = freeze(python)
    done = run_cli(["run", "--app", "app:create_app", "--python", str(python)], project, _NO_SERVER)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "alembic 1.3.3 in the app's environment is older than 1.4, the oldest the harness's worker supports" in lines[0]
    assert freeze(python) == before


@pytest.mark.parametrize(("db", "package"), [("postgresql", "psycopg2-binary"), ("mysql", "PyMySQL")])
def test_a_missing_driver_names_the_package_to_add(tmp_path: Path, db: str, package: str) -> None:
    python = stack_python("3.9", STACK_NO_DRIVERS)
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS, template=flask_migrate_template(str(python)))
    done = run_cli(["run", "--app", "app:create_app", "--python", str(python), "--db", db], project, _NO_SERVER)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"(the {db} driver): add {package} to it" in lines[0]
    assert f"-m pip install {package}" in lines[0]
    # sqlite needs no driver: the same environment verifies the chain there
    ok = run_cli(["run", "--app", "app:create_app", "--python", str(python), "--db", "sqlite"], project)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_worker_imports_none_of_the_harness_s_own_dependencies(tmp_path: Path, py2020: Path) -> None:
    """What the worker can import (every mode's modules) loads in an interpreter without testcontainers, docker,
    rich, tomli or squawk, and without putting the harness's site-packages on its path."""
    from harness.process import worker_command

    probe = worker_command(str(py2020))[2].replace(
        "import harness.floor as w; sys.exit(w.main())",
        "import importlib; [importlib.import_module(m) for m in ('harness.worker', 'harness.lint.offline', "
        "'harness.lint.observe', 'harness.rehearse.steps', 'harness.lint.observers.postgresql', "
        "'harness.lint.observers.mysql', 'harness.lint.observers.sqlite')]; "
        "import json; print(json.dumps([sorted({n.split('.')[0] for n in sys.modules} & {'testcontainers', "
        "'docker', 'rich', 'tomli', 'squawk'}), [p for p in sys.path if 'site-packages' in p]]))")
    done = subprocess.run([str(py2020), "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr
    loaded, path = json.loads(done.stdout)
    assert loaded == []
    assert path and all(p.startswith(str(py2020.parent.parent)) for p in path), path
