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
import sqlalchemy as sa

from conftest import ALL, run_cli
from projects import GOOD_MODELS, Rev, flask_migrate_template, good_chain, make_project
from test_rehearse import EMAIL_MODELS, UNIQUE_NAMES  # the same chain and models rehearse's own tests use
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
    from harness.run.process import worker_command

    probe = worker_command(str(py2020))[2].replace(
        "import harness.run.floor as w; sys.exit(w.main())",
        "import importlib; [importlib.import_module(m) for m in ('harness.run.worker', 'harness.lint.offline', "
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


# -- lint, rehearse and compat on the 2020 stack: a good chain and a bad one, pins untouched ----------------------

#: a NOT NULL column without a default on a table that holds rows: SQLite and PostgreSQL refuse the step
NOT_NULL = Rev("a003", "add post summary", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("summary", sa.String(length=50), nullable=False))
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("summary")
""")


def _servers(server_urls: dict[str, str]) -> dict[str, str]:
    return {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]}


def test_lint_on_the_2020_stack_observes_every_step_on_every_database(tmp_path: Path, py2020: Path,
                                                                       server_urls: dict[str, str]) -> None:
    """Each pending step runs in the app's interpreter (SQLAlchemy 1.3) on tables holding rows, on all three
    databases, observed there too (the PostgreSQL observer once read its results with 1.4's ``.all()``: lint
    INCOMPLETE on that database): a good chain passes; a NOT NULL column without default fails exactly where the
    database refuses it (step-fails on SQLite and PostgreSQL; MariaDB fills the rows) and is named everywhere."""
    before = freeze(py2020)
    good = _project(tmp_path / "good", py2020)
    models = GOOD_MODELS + '    summary = db.Column(sa.String(50), nullable=False)\n'
    bad = _project(tmp_path / "bad", py2020, [*good_chain(), NOT_NULL], models)
    reports = {}
    for name, project, code in (("good", good, 0), ("bad", bad, 1)):
        done = run_cli(["lint", "--app", "app:create_app", "--python", str(py2020), "--json",
                        str(tmp_path / f"{name}.json")], project, _servers(server_urls))
        assert done.returncode == code, (name, done.stdout + done.stderr)
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    for name, steps in (("good", 2), ("bad", 3)):
        report = reports[name]
        assert report["versions"]["SQLAlchemy"] == "1.3.24" and report["versions"]["alembic"] == "1.4.3"
        assert report["harness_versions"]["SQLAlchemy"] != "1.3.24"
        assert {d["dialect"]: (d["status"], len(d["observations"])) for d in report["databases"]} == {
            d: ("ok", steps) for d in ALL}, (name, report["databases"])
    assert not [f for f in reports["good"]["findings"] if f["severity"] == "error"]
    errors = {(f["rule"], f["database"], f["revision"]) for f in reports["bad"]["findings"] if f["severity"] == "error"}
    assert errors == {("not-null-without-default", d, "a003") for d in ALL} | {
        ("step-fails", "sqlite", "a003"), ("step-fails", "postgresql", "a003")}, errors
    assert freeze(py2020) == before


def _production_at_a002(project: Path, python: Path, url: str) -> None:
    """Plain ``flask db upgrade a002`` with the app's own interpreter, then rows with repeated names."""
    env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "app:create_app", "PYTHONPATH": str(project)}
    done = subprocess.run([str(python), "-m", "flask", "db", "upgrade", "a002"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'ada'), (3, 'bob')"))
        conn.execute(sa.text("INSERT INTO posts (id, user_id, title) VALUES (1, 1, 'Hello'), (2, 3, 'Again')"))
    engine.dispose()


ADD_EMAIL = Rev("a003", "add users email", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=120), nullable=True))
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email")
""")


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_rehearse_on_the_2020_stack_is_safe_or_unsafe_as_production_s_rows_say(
        tmp_path: Path, py2020: Path, server_urls: dict[str, str], dialect: str) -> None:
    """A production database at a002, brought there by plain ``flask db upgrade`` on the 2020 stack: a nullable
    column is SAFE; a unique constraint over repeated names is UNSAFE (the copy's step fails on the sampled rows,
    and the proof counts the duplicates on production). The app's venv is unchanged."""
    before = freeze(py2020)
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'production.db'}"
    else:
        name = f"prodiso_{os.urandom(4).hex()}"
        admin = sa.create_engine(server_urls["postgresql"], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        url = sa.engine.make_url(server_urls["postgresql"]).set(database=name).render_as_string(hide_password=False)
    try:
        verdicts = {}
        for case, chain, models, code in (
                ("good", [*good_chain(), ADD_EMAIL], EMAIL_MODELS, 0),
                ("bad", [*good_chain(), ADD_EMAIL, UNIQUE_NAMES],
                 EMAIL_MODELS.replace("sa.String(80), nullable=False", "sa.String(80), nullable=False, unique=True"), 1)):
            project = _project(tmp_path / case, py2020, chain, models)
            if case == "good":
                _production_at_a002(project, py2020, url)
            report_path = tmp_path / f"{case}.json"
            done = run_cli(["rehearse", "--app", "app:create_app", "--python", str(py2020), "--from", url,
                            "--sample-rows", "10", "--json", str(report_path)], project, _servers(server_urls))
            assert done.returncode == code, (case, done.stdout + done.stderr)
            verdicts[case] = json.loads(report_path.read_text())
        good, bad = verdicts["good"], verdicts["bad"]
        assert good["verdict"] == "safe" and [s["status"] for s in good["steps"]] == ["passed"], good
        assert good["versions"]["SQLAlchemy"] == "1.3.24" and good["schema_matches_models"]["status"] == "passed"
        assert bad["verdict"] == "unsafe" and [s["status"] for s in bad["steps"]] == ["passed", "failed"], bad
        assert any(r.startswith("pending migration a004 (unique user names) failed") for r in bad["reasons"])
    finally:
        if dialect != "sqlite":
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()
    assert freeze(py2020) == before


def test_compat_on_the_2020_stack_classifies_the_new_revisions(tmp_path: Path, py2020: Path,
                                                               server_urls: dict[str, str]) -> None:
    """The previous release (a git tag) runs in the app's interpreter too (``--previous-python`` defaults to
    ``--python``): expand-only revisions are deployable (exit 0); a rename breaks the release still running
    (exit 1, ``breaking``), on SQLAlchemy 1.3's queries. The app's venv is unchanged."""
    from test_rolling import (DROP_LEGACY, NEW_MODELS, NICKNAME, RENAME_TITLE, SCORE, SLUG, SPLIT_MODELS, _classes,
                              compat, release_history)

    before = freeze(py2020)
    template = flask_migrate_template(str(py2020))
    good = release_history(tmp_path / "good", [NICKNAME, SCORE, DROP_LEGACY], SPLIT_MODELS, template)
    done, report = compat(good, tmp_path, server_urls, "--previous", "v1", "--python", str(py2020),
                          db=("postgresql",))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _classes(report["databases"][0]) == {"b001": "expand", "b002": "expand", "b003": "contract"}
    bad = release_history(tmp_path / "bad", [NICKNAME, SCORE, DROP_LEGACY, RENAME_TITLE, SLUG], NEW_MODELS, template)
    done, report = compat(bad, tmp_path, server_urls, "--previous", "v1", "--python", str(py2020),
                          db=("postgresql",))
    assert done.returncode == 1, done.stdout + done.stderr
    assert _classes(report["databases"][0]) == {"b001": "expand", "b002": "expand", "b003": "contract",
                                                "b004": "breaking", "b005": "breaking"}
    assert "release v1 selects Post.title" in done.stdout
    assert freeze(py2020) == before


#: a line per app load: the app's SQLAlchemy and Python, written where LOAD_LOG says (which interpreter loaded it)
LOAD_LOGGED = '''
import os as _os
import sys as _sys
with open(_os.environ["LOAD_LOG"], "a") as _log:
    _log.write(f"{sa.__version__} {_sys.version.split()[0]}\\n")

''' + GOOD_MODELS


def test_the_pytest_plugin_takes_the_app_s_interpreter_too(tmp_path: Path, py2020: Path,
                                                           server_urls: dict[str, str]) -> None:
    """``pytest --migrations --migrations-python PATH`` (pytest and the harness in the harness's interpreter): every
    item's worker loads the app in the 2020 stack's interpreter, the items pass there, and not one pin moves. The
    same run without the option loads the app in the harness's own interpreter (so the log tells them apart)."""
    from conftest import cli_env

    project = _project(tmp_path / "p", py2020, models=LOAD_LOGGED)
    log = tmp_path / "loads.log"
    env = cli_env({**_servers(server_urls), "LOAD_LOG": str(log)})
    base = [sys.executable, "-m", "pytest", "--migrations", "--migrations-app", "app:create_app", "--migrations-db",
            "sqlite,postgresql", "--migrations-checks", "upgrade,downgrade,schema_matches_models", "-p",
            "no:cacheprovider", "-rA"]
    before = freeze(py2020)
    proc = subprocess.run(base + ["--migrations-python", str(py2020)], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout, proc.stdout
    loads = set(log.read_text().splitlines())
    assert loads and all(line.startswith("1.3.24 3.9.") for line in loads), loads
    assert freeze(py2020) == before
    # without --migrations-python: the harness's interpreter (SQLAlchemy 2) loads it, so the log above proves it
    log.unlink()
    proc = subprocess.run(base + ["--migrations-db", "sqlite"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    loads = set(log.read_text().splitlines())
    assert loads and not any(line.startswith("1.3.24 ") for line in loads), (loads, proc.stdout)
