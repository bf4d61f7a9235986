"""[shapes] Multi-database apps (``flask db init --multidb``): the main database and each bind get a scratch
database of their own on the server under test, each database's chain is checked like a single database's, and
every verdict names its bind. Real runs on real databases, with Flask-Migrate's own multidb env.py."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from multidb_project import (ADD_COLUMNS, ANALYTICS, ANALYTICS_MODELS, CREATE, MODELS, MultiRev, good_chain,
                             make_multidb_project)
import pytest

from stacks import STACK_2020, STACK_2022, stack_python

ALL = ("sqlite", "postgresql", "mysql")
CHAIN_CHECKS = ["upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade", "leaves_no_trace",
                "stairway", "data"]

#: m002's downgrade of the bind ``users`` drops a column that does not exist: the main database's is right
BROKEN_USERS_DOWNGRADE = MultiRev(ADD_COLUMNS.revision, ADD_COLUMNS.message, {
    **ADD_COLUMNS.bodies,
    "users": (ADD_COLUMNS.bodies["users"][0], """
        with op.batch_alter_table("users") as batch_op:
            batch_op.drop_index(batch_op.f("ix_users_name"))
            batch_op.drop_column("nickname")
    """)})


def _checks(run, dialect: str, bind: str | None) -> dict[str, dict]:
    return {c["name"]: c for c in run.database(dialect)["checks"] if c["bind"] == bind}


def test_each_database_of_a_multidb_app_is_checked_on_its_own_scratch_database(harness, tmp_path: Path) -> None:
    """A good chain: every check passes on the main database and on the bind, on every dialect; each check of the
    main database says ``"bind": null``, each of the bind ``"bind": "users"``; the bind's models are its own
    (one table each side); the configured SQLite files are never made."""
    project = make_multidb_project(tmp_path / "p", good_chain())
    junit = tmp_path / "report.xml"
    run = harness(project, "--junit", str(junit))
    assert run.exit_code == 0, run.stdout + run.stderr
    for dialect in ALL:
        main, users = _checks(run, dialect, None), _checks(run, dialect, "users")
        assert list(main) == ["single_head", *CHAIN_CHECKS], list(main)
        assert list(users) == CHAIN_CHECKS, list(users)  # one history: its heads are checked once
        assert all(c["status"] == "passed" for c in [*main.values(), *users.values()])
        assert {c["bind"] for c in run.database(dialect)["checks"]} == {None, "users"}
        for side in (main, users):
            assert side["schema_matches_models"]["message"].startswith("1 model tables match"), side
        assert {s["bind"] for s in run.database(dialect)["steps"]} == {None, "users"}
    assert "upgrade[users]" in run.stdout and "schema_matches_models[users]" in run.stdout
    assert not (project / "main.db").exists() and not (project / "users.db").exists()
    assert not (project / "instance").exists() or not list((project / "instance").iterdir())
    cases = {(c.get("classname"), c.get("name")) for c in ET.parse(junit).getroot().iter("testcase")}
    assert ("postgresql.users", "upgrade") in cases and ("postgresql", "upgrade") in cases
    assert ("mysql.users", "leaves_no_trace") in cases and ("sqlite", "single_head") in cases


def test_a_defect_in_one_binds_chain_fails_on_that_bind_and_revision_only(harness, tmp_path: Path) -> None:
    """m002's downgrade of the bind ``users`` is wrong: on every dialect the downgrade and the stairway of
    ``users`` fail at m002 with the database's own error and the bind's name; the main database's chain passes
    through, and so does everything of ``users`` that does not go down through m002."""
    junit = tmp_path / "report.xml"
    run = harness(make_multidb_project(tmp_path / "p", [CREATE, BROKEN_USERS_DOWNGRADE]), "--junit", str(junit))
    assert run.exit_code == 1, run.stdout + run.stderr
    errors = {"sqlite": "KeyError: 'nickname'", "postgresql": 'column "nickname" of relation "users" does not exist',
              "mysql": "Can't DROP COLUMN `nickname`"}
    for dialect in ALL:
        main, users = _checks(run, dialect, None), _checks(run, dialect, "users")
        assert all(c["status"] == "passed" for c in main.values()), main
        failed = {name: c for name, c in users.items() if c["status"] == "failed"}
        assert set(failed) == {"downgrade", "stairway"}, users
        downgrade = failed["downgrade"]
        assert downgrade["revision"] == "m002" and downgrade["bind"] == "users"
        assert downgrade["message"].startswith("bind users: downgrade of m002 (add items price and users name) to "
                                               f"m001 failed on {dialect}: "), downgrade["message"]
        assert errors[dialect] in downgrade["message"]
        assert failed["stairway"]["revision"] == "m002" and failed["stairway"]["same_as"] == "downgrade[users]"
        assert users["leaves_no_trace"]["status"] == "skipped"
        assert {users[n]["status"] for n in ("upgrade", "schema_matches_models", "data")} == {"passed"}
    assert "downgrade[users]         failed  at m002  bind users: downgrade of m002" in run.stdout
    assert "downgrade[users] at m002, stairway[users] at m002 (same as downgrade[users])" in run.stdout
    failures = [c for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert {(c.get("classname"), c.get("name")) for c in failures} == {
        (f"{d}.users", n) for d in ALL for n in ("downgrade", "stairway")}


def test_a_binds_schema_is_compared_with_that_binds_models(harness, tmp_path: Path) -> None:
    """Main + two binds; the models of the bind ``analytics`` have a column its chain never adds: only
    schema_matches_models[analytics] (and autogenerate there) fails; the main database and ``users`` pass."""
    models = MODELS + ANALYTICS_MODELS.replace('    kind = db.Column(sa.String(40), nullable=False)\n',
                                               '    kind = db.Column(sa.String(40), nullable=False)\n'
                                               '    source = db.Column(sa.String(40), nullable=True)\n')
    create = MultiRev(CREATE.revision, CREATE.message, {**CREATE.bodies, **ANALYTICS})
    binds = {"users": "sqlite:///users.db", "analytics": "sqlite:///analytics.db"}
    project = make_multidb_project(tmp_path / "p", [create, ADD_COLUMNS], models, binds)
    run = harness(project, db=("sqlite", "postgresql"))
    assert run.exit_code == 1, run.stdout + run.stderr
    for dialect in ("sqlite", "postgresql"):
        bad = [(c["name"], c["bind"]) for c in run.database(dialect)["checks"] if c["status"] != "passed"]
        assert sorted(bad) == [("no_pending_autogenerate", "analytics"), ("schema_matches_models", "analytics")], bad
        schema = _checks(run, dialect, "analytics")["schema_matches_models"]
        assert schema["message"].startswith("bind analytics: 1 difference(s)"), schema
        assert [d["table"] for d in schema["differences"]] == ["events"] and "source" in schema["differences"][0]["text"]


def test_a_bind_pinned_to_another_dialect_is_checked_there_or_skipped_with_the_reason(harness, tmp_path: Path) -> None:
    """The app configures the bind ``analytics`` with a MySQL URL (the main database and ``users`` with SQLite
    ones): it is checked on mysql only, and with mysql not among --db every check of it is skipped, saying why."""
    create = MultiRev(CREATE.revision, CREATE.message, {**CREATE.bodies, **ANALYTICS})
    binds = {"users": "sqlite:///users.db", "analytics": "mysql+pymysql://app:secret@127.0.0.1:1/analytics"}
    project = make_multidb_project(tmp_path / "p", [create, ADD_COLUMNS], MODELS + ANALYTICS_MODELS, binds)
    run = harness(project, "--checks", "upgrade,schema_matches_models", db=("sqlite", "mysql"))
    assert run.exit_code == 0, run.stdout + run.stderr
    assert {c["bind"] for c in run.database("sqlite")["checks"]} == {None, "users"}
    assert {c["bind"] for c in run.database("mysql")["checks"]} == {None, "users", "analytics"}
    assert _checks(run, "mysql", "analytics")["schema_matches_models"]["status"] == "passed"

    alone = harness(project, "--checks", "upgrade", db=("sqlite",))
    assert alone.exit_code == 0, alone.stdout + alone.stderr
    skipped = _checks(alone, "sqlite", "analytics")["upgrade"]
    assert skipped["status"] == "skipped"
    assert "SQLALCHEMY_BINDS['analytics'] is a mysql URL" in skipped["message"]
    assert "add mysql to --db to check it" in skipped["message"]
    assert _checks(alone, "sqlite", "users")["upgrade"]["status"] == "passed"
    assert alone.stdout.rstrip().endswith("passed, but bind analytics not verified (every check of it skipped: "
                                          "pinned to a dialect not among --db)"), alone.stdout


@pytest.mark.parametrize("stack", [("3.9", STACK_2020), ("3.11", STACK_2022)], ids=["fsa2.4-2020", "fsa2.5-2022"])
def test_flask_sqlalchemy_2_binds_are_found_by_their_bind_key(stack, harness, tmp_path: Path) -> None:
    """Flask-SQLAlchemy 2.4 / 2.5 keep every bind's tables on one MetaData (``info['bind_key']``), and Flask-Migrate
    2.5's multidb env.py builds each engine from alembic's config, 3.1's asks ``db.get_engine(bind=...)``: the same
    verdicts, in the app's own stack."""
    python = str(stack_python(*stack))
    good = harness(make_multidb_project(tmp_path / "good", good_chain(), python=python), "--python", python,
                   db=("sqlite", "postgresql"))
    assert good.exit_code == 0, good.stdout + good.stderr
    assert good.report["versions"]["Flask-SQLAlchemy"].startswith("2.")
    for dialect in ("sqlite", "postgresql"):
        assert list(_checks(good, dialect, "users")) == CHAIN_CHECKS
        assert _checks(good, dialect, "users")["schema_matches_models"]["message"].startswith("1 model tables match")
        assert _checks(good, dialect, None)["schema_matches_models"]["message"].startswith("1 model tables match")
    bad = harness(make_multidb_project(tmp_path / "bad", [CREATE, BROKEN_USERS_DOWNGRADE], python=python),
                  "--python", python, "--checks", "downgrade", db=("postgresql",))
    assert bad.exit_code == 1, bad.stdout + bad.stderr
    assert [(c["name"], c["bind"], c["revision"]) for c in bad.database("postgresql")["checks"]
            if c["status"] == "failed"] == [("downgrade", "users", "m002")]


def test_multidb_usage_errors(harness, tmp_path: Path) -> None:
    """--multidb on an app without binds, and --baseline on a multidb app, are usage errors (exit 2) that say
    what to drop."""
    project = make_multidb_project(tmp_path / "p", good_chain(), binds={})
    run = harness(project, "--multidb", db=("sqlite",))
    assert run.exit_code == 2 and "configures no SQLALCHEMY_BINDS" in run.stderr, run.stderr
    project = make_multidb_project(tmp_path / "q", good_chain())
    run = harness(project, "--baseline", "create-all", db=("sqlite",))
    assert run.exit_code == 2 and "not supported for a multi-database app" in run.stderr, run.stderr


def test_a_pytest_item_fails_when_any_database_of_the_app_fails(tmp_path: Path) -> None:
    """``pytest --migrations``: ``migrations[sqlite-downgrade]`` stands for the downgrade of the main database and
    of each bind; it fails on the bind's failure and names the bind; the upgrade item passes."""
    import subprocess
    import sys

    from conftest import cli_env

    project = make_multidb_project(tmp_path / "p", [CREATE, BROKEN_USERS_DOWNGRADE])
    proc = subprocess.run([sys.executable, "-m", "pytest", "--migrations", "--migrations-app", "app:create_app",
                           "--migrations-db", "sqlite", "--migrations-checks", "upgrade,downgrade", "-p",
                           "no:cacheprovider", "-rA"], cwd=project, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED ::migrations[sqlite-downgrade]" in proc.stdout and "PASSED ::migrations[sqlite-upgrade]" in proc.stdout
    assert "downgrade[users] failed on sqlite at revision m002" in proc.stdout, proc.stdout
