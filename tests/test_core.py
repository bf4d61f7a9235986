"""[core] the chain runs base→head→base on every database, through containers and through server URLs; a
broken step fails on exactly the database and revision where it breaks; bad input gets exit 2; nothing is left."""
from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import ALL, IMAGES, LOCAL_URLS, REPO, HarnessRun, release, run_cli, run_containers, scratch_leftovers
from projects import GOOD_MODELS, POSTS, USERS, Rev, good_chain, make_project

EXAMPLE_HEAD = "c7de05f4782e"
#: app/models.py is written with SQLAlchemy 2.0's typed mappings (Mapped, mapped_column); the harness runs apps on
#: 1.3 and 1.4 too (tests/projects.py's apps are plain db.Column models), where the example app does not import:
#: there the harness must say so in one line (exit 2) before any database starts
EXAMPLE_APP_IMPORTS = release("SQLAlchemy") >= (2, 0)
CHECKS = ["single_head", "upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade", "leaves_no_trace",
          "stairway", "data"]


@pytest.mark.fast
def _example_app_does_not_import(run: HarnessRun) -> None:
    """The app stack's SQLAlchemy has no ``Mapped`` / ``mapped_column`` (1.3 has neither, 1.4 no mapped_column)."""
    assert run.exit_code == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("migration-harness: error: the app factory app:create_app raised"), lines
    assert "ImportError: cannot import name '" in lines[0] and "from 'sqlalchemy.orm'" in lines[0], lines
    assert run.report["databases"] == [] and run_containers(run.report["run_id"]) == set()


def test_example_app_passes_in_containers_the_harness_starts(harness) -> None:
    run = harness(REPO, use_servers=False, env={"HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": ""})
    if not EXAMPLE_APP_IMPORTS:
        return _example_app_does_not_import(run)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["head"] == EXAMPLE_HEAD and run.report["ok"] is True
    for db in run.report["databases"]:
        assert db["status"] == "passed"
        assert db["backend"] == ("file" if db["dialect"] == "sqlite" else "container")
        assert [c["name"] for c in db["checks"]] == CHECKS
        assert all(c["status"] == "passed" for c in db["checks"])
        assert db["duration_s"] > 0
    assert run.database("postgresql")["server_version"].startswith("PostgreSQL ")
    assert run.database("mysql")["server_version"].split()[0] in ("MySQL", "MariaDB")
    assert run_containers(run.report["run_id"]) == set()


def test_example_app_passes_on_existing_servers_by_url(harness) -> None:
    before = {d: set(scratch_leftovers(LOCAL_URLS[d])) for d in ("postgresql", "mysql")}
    run = harness(REPO, db=("postgresql", "mysql"), use_servers=False,
                  env={"HARNESS_POSTGRESQL_URL": LOCAL_URLS["postgresql"], "HARNESS_MYSQL_URL": LOCAL_URLS["mysql"]})
    if not EXAMPLE_APP_IMPORTS:
        return _example_app_does_not_import(run)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert {d["dialect"]: d["backend"] for d in run.report["databases"]} == {"postgresql": "url", "mysql": "url"}
    for dialect in ("postgresql", "mysql"):
        left = {n for n in set(scratch_leftovers(LOCAL_URLS[dialect])) - before[dialect]
                if n.startswith(f"mharness_{run.report['run_id']}_")}
        assert left == set()


# -- a broken step fails on exactly the database and revision where it breaks ---------------------------------

@pytest.mark.fast
def test_string_without_length_breaks_the_upgrade_on_mysql_only(harness, tmp_path: Path) -> None:
    broken = replace(POSTS, upgrade=POSTS.upgrade.replace('sa.String(length=200)', "sa.String()"))
    run = harness(make_project(tmp_path / "p", [USERS, broken], GOOD_MODELS))
    assert run.exit_code == 1
    assert run.statuses("upgrade") == {"sqlite": "passed", "postgresql": "passed", "mysql": "failed"}
    failure = run.check("mysql", "upgrade")
    assert failure["revision"] == "a002"
    assert "a002 (create posts)" in failure["message"] and "on mysql" in failure["message"]
    assert "VARCHAR requires a length" in failure["message"]
    assert run.check("mysql", "downgrade")["status"] == "skipped"
    assert run.statuses("downgrade") == {"sqlite": "passed", "postgresql": "passed", "mysql": "skipped"}
    assert "mysql" in run.stdout and "a002" in run.stdout


INDEX_ON_FK = Rev("a003", "index posts by user", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_index(batch_op.f("ix_posts_user_id"), ["user_id"], unique=False)
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_index(batch_op.f("ix_posts_user_id"))
""")


@pytest.mark.fast
def test_dropping_an_index_a_foreign_key_needs_breaks_the_downgrade_on_mysql_only(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace('sa.ForeignKey("users.id"), nullable=False)', 'sa.ForeignKey("users.id"), nullable=False, index=True)')
    run = harness(make_project(tmp_path / "p", good_chain() + [INDEX_ON_FK], models))
    assert run.statuses("upgrade") == {d: "passed" for d in ALL}
    assert run.statuses("downgrade") == {"sqlite": "passed", "postgresql": "passed", "mysql": "failed"}
    failure = run.check("mysql", "downgrade")
    assert failure["revision"] == "a003" and "downgrade of a003 (index posts by user) to a002" in failure["message"]
    assert "1553" in failure["message"]
    assert run.statuses("leaves_no_trace") == {"sqlite": "passed", "postgresql": "passed", "mysql": "skipped"}
    assert run.exit_code == 1


def test_a_python_error_in_a_migration_names_the_file_and_line(harness, tmp_path: Path) -> None:
    broken = Rev("a003", "typo", "op.add_colum('posts', sa.Column('x', sa.Integer()))", "pass")
    run = harness(make_project(tmp_path / "p", good_chain() + [broken], GOOD_MODELS), db=("sqlite",))
    failure = run.check("sqlite", "upgrade")
    assert failure["status"] == "failed" and failure["revision"] == "a003"
    assert "AttributeError" in failure["message"] and "a003_typo.py:" in failure["message"]


# -- apps: every form --app takes ------------------------------------------------------------------------------

MODULE_LEVEL_APP = '''
import os
from app import create_app
app = create_app()
'''


def test_module_level_app_gets_each_database_its_own_url(harness, tmp_path: Path) -> None:
    """An app built at import time still runs on every scratch database: each runs in its own process."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "wsgi.py").write_text(MODULE_LEVEL_APP)
    run = harness(project, "--app", "wsgi:app", db=("sqlite", "postgresql"))
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.statuses("upgrade") == {"sqlite": "passed", "postgresql": "passed"}


def test_app_given_as_a_file_path(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "wsgi.py").write_text(MODULE_LEVEL_APP)
    run = harness(project, "--app", "wsgi.py", db=("sqlite",))
    assert run.exit_code == 0, run.stdout + run.stderr


# -- bad input: exit 2, one line, nothing started, nothing written --------------------------------------------

def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("migration-harness: error: ")
    return lines[0]


@pytest.mark.fast
def test_bad_app_module(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["run", "--app", "nosuchmodule", "--json", str(tmp_path / "r.json")], project)
    assert proc.returncode == 2
    assert "no module named 'nosuchmodule'" in _one_line_error(proc)
    import json
    report = json.loads((tmp_path / "r.json").read_text())  # the reason, for a CI step that parses the report
    assert (report["exit_code"], report["databases"], report["run_id"]) == (2, [], proc.run_id)
    assert "no module named 'nosuchmodule'" in report["error"]
    assert run_containers(proc.run_id) == set()


def test_app_that_fails_to_import_shows_the_tail_of_its_traceback(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "broken.py").write_text("import os\nraise RuntimeError('redis is not configured')\n")
    proc = run_cli(["run", "--app", "broken"], project)
    assert proc.returncode == 2
    line = _one_line_error(proc)
    assert "RuntimeError: redis is not configured" in line and "broken.py" in line


def test_factory_that_raises(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "factory.py").write_text("def make(config=None):\n    raise KeyError('SECRET_KEY')\n")
    proc = run_cli(["run", "--app", "factory:make"], project)
    assert proc.returncode == 2
    assert "factory:make raised" in _one_line_error(proc) and "KeyError" in proc.stderr


def test_missing_migrations_directory(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", "--migrations", "nowhere"], project)
    assert proc.returncode == 2
    assert "nowhere does not exist" in _one_line_error(proc)


def test_directory_that_is_not_flask_migrate(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("current_app", "the_app").replace("from flask import the_app", ""))
    proc = run_cli(["run", "--app", "app:create_app"], project)
    assert proc.returncode == 2
    assert "does not take its engine from the Flask app" in _one_line_error(proc)


def test_unknown_database_name(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite,oracle"], project)
    assert proc.returncode == 2
    assert "unknown database 'oracle'" in _one_line_error(proc)


@pytest.mark.fast
def test_app_that_ignores_the_scratch_url_is_stopped_before_any_ddl(tmp_path: Path) -> None:
    """A hard-coded SQLALCHEMY_DATABASE_URI is overridden (test_real_apps); an app whose db hands env.py an engine
    of its own making is still caught by the check before any DDL."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    precious = tmp_path / "production.db"
    app_py = project / "app.py"
    app_py.write_text(app_py.read_text().replace(
        "db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))",
        "import sqlalchemy as _sa\n\n\nclass OwnEngine(SQLAlchemy):\n"
        f"    def get_engine(self, *args, **kwargs):\n        return _sa.create_engine('sqlite:///{precious}')\n\n\n"
        "db = OwnEngine(metadata=MetaData(naming_convention=NAMING))"))
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite"], project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not at the scratch database" in _one_line_error(proc) and str(precious) in proc.stderr
    if precious.exists():  # the app may create the file on connect; it must hold no table
        engine = sa.create_engine(f"sqlite:///{precious}")
        assert sa.inspect(engine).get_table_names() == []
        engine.dispose()


# -- a database that cannot be provided: exit 3, or skipped -------------------------------------------------------

def test_unreachable_server_url_exits_3_with_the_reason(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env = {"HARNESS_POSTGRESQL_URL": "postgresql://postgres@127.0.0.1:1/postgres"}
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite,postgresql", "--json", str(tmp_path / "r.json")],
                   project, env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot connect to postgresql+psycopg2://postgres@127.0.0.1:1/postgres" in proc.stdout


def test_skip_unavailable_keeps_the_sqlite_verdict(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": ""}
    proc = run_cli(["run", "--app", "app:create_app", "--skip-unavailable", "--json", str(tmp_path / "r.json")],
                   project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json
    report = json.loads((tmp_path / "r.json").read_text())
    assert {d["dialect"]: d["status"] for d in report["databases"]} == {
        "sqlite": "passed", "postgresql": "skipped", "mysql": "skipped"}
    assert "no Docker engine answers" in report["databases"][1]["message"]


def test_every_database_skipped_is_not_a_pass(tmp_path: Path) -> None:
    """--skip-unavailable with nothing that could be provided: nothing was verified, so exit 3, not 0."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": ""}
    proc = run_cli(["run", "--app", "app:create_app", "--skip-unavailable", "--db", "postgresql,mysql", "--json",
                    str(tmp_path / "r.json")], project, env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "every database was skipped, nothing was verified" in proc.stdout
    assert "every check passed" not in proc.stdout
    import json
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is False and report["exit_code"] == 3


def test_no_docker_engine_exits_3(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "HARNESS_MYSQL_URL": ""}
    proc = run_cli(["run", "--app", "app:create_app", "--db", "mysql"], project, env)
    assert proc.returncode == 3
    assert "no Docker engine answers" in proc.stdout


def test_missing_image_exits_3_and_names_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env = {"HARNESS_POSTGRESQL_URL": "", "HARNESS_POSTGRESQL_IMAGE": "migration-harness/no-such-image:1"}
    proc = run_cli(["run", "--app", "app:create_app", "--db", "postgresql"], project, env, timeout=300)
    assert proc.returncode == 3
    assert "migration-harness/no-such-image:1" in proc.stdout
    assert run_containers(proc.run_id) == set()


def test_an_image_that_cannot_be_pulled_is_one_line_with_the_fix(tmp_path: Path) -> None:
    """No registry reachable (or no such tag): the reason and the fix, not Docker's ``500 Server Error …``."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    env = {"HARNESS_MYSQL_URL": "", "HARNESS_MYSQL_IMAGE": "mysql:0.0-mharness-missing"}
    proc = run_cli(["run", "--app", "app:create_app", "--db", "mysql"], project, env, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "(database)" in line)
    assert "image 'mysql:0.0-mharness-missing' is not available locally and could not be pulled" in line
    # advice an app's user can follow where they are (ci/setup.sh exists only in the harness's repository)
    assert "docker pull mysql:0.0-mharness-missing" in line and "HARNESS_MYSQL_IMAGE" in line
    assert "HARNESS_MYSQL_URL" in line and "setup.sh" not in line
    assert "Server Error" not in proc.stdout and "http+docker" not in proc.stdout


def test_images_come_from_the_environment() -> None:
    assert IMAGES["postgresql"] and IMAGES["mysql"]


def test_a_server_older_than_the_app_supports_exits_3(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "pyproject.toml").write_text('[tool.migration-harness.postgresql]\nmin_version = "99.1"\n')
    env = {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"]}
    proc = run_cli(["run", "--app", "app:create_app", "--db", "postgresql"], project, env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "older than 99.1, the oldest the app supports (min_version)" in proc.stdout
    (project / "pyproject.toml").write_text('[tool.migration-harness.postgresql]\nmin_version = "9.6"\n')
    proc = run_cli(["run", "--app", "app:create_app", "--db", "postgresql", "--checks", "upgrade"], project, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
