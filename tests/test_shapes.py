"""[shapes] Flask-Migrate apps as their teams run them: chains that start from ``db.create_all()`` + ``flask db
stamp head`` (``--baseline create-all``) and per-database settings (``--env``). Real runs on real databases."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from projects import GOOD_MODELS, POSTS, Rev, make_project

ALL = ("sqlite", "postgresql", "mysql")

#: the models have users.email, which only b001 adds: an install builds them with create_all and stamps head
BASELINE_MODELS = GOOD_MODELS.replace(
    "    name = db.Column(sa.String(80), nullable=False)\n",
    "    name = db.Column(sa.String(80), nullable=False)\n    email = db.Column(sa.String(120), nullable=True)\n")
EMPTY_BASE = Rev("b000", "baseline", "pass", "pass")
ADD_EMAIL = Rev("b001", "add users email", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=120), nullable=True))
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email")
""")
CREATE_POSTS = replace(POSTS, revision="b002")


def baseline_chain() -> list[Rev]:
    """An empty base revision, then one that alters a table no revision creates, then one that creates a table."""
    return [EMPTY_BASE, ADD_EMAIL, CREATE_POSTS]


def test_a_chain_that_starts_from_create_all_names_the_option(harness, tmp_path: Path) -> None:
    """From an empty database the first real step fails on every database: the message says why (a table of
    the models that no revision creates) and names --baseline create-all, for every check that meets it."""
    run = harness(make_project(tmp_path / "p", baseline_chain(), BASELINE_MODELS))
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.report["baseline"] is None
    for dialect in ALL:
        for name in ("upgrade", "stairway", "data"):
            check = run.check(dialect, name)
            assert check["status"] == "failed" and check["revision"] == "b001", check
            assert "users: a table of the models that no revision before this one creates" in check["message"]
            assert "does not start from an empty database" in check["message"]
            assert check["message"].endswith("check it from that baseline with --baseline create-all"), check
        assert run.check(dialect, "stairway")["same_as"] == "upgrade"


def test_a_chain_from_create_all_is_checked_from_that_baseline(harness, tmp_path: Path) -> None:
    """--baseline create-all: db.create_all(), stamp head, then every revision reverted one at a time and applied
    back, the stairway and the data run on that window, the models against the result; leaves_no_trace has no
    empty database to compare with. --from narrows the window."""
    project = make_project(tmp_path / "p", baseline_chain(), BASELINE_MODELS)
    run = harness(project, "--baseline", "create-all")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["baseline"] == "create-all"
    assert "(head b002, baseline create-all: db.create_all() stamped at head)" in run.stdout
    for dialect in ALL:
        names = [c["name"] for c in run.database(dialect)["checks"]]
        # reported in the usual order (the steps below show the downgrade ran first)
        assert names == ["single_head", "upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade",
                         "leaves_no_trace", "stairway", "data"], names
        assert run.statuses("leaves_no_trace")[dialect] == "skipped"
        assert all(c["status"] == "passed" for c in run.database(dialect)["checks"] if c["name"] != "leaves_no_trace")
        assert run.check(dialect, "downgrade")["message"] == ("from db.create_all() stamped at head: 3 revisions "
                                                               "reverted one by one, head down to base")
        steps = [(s["check"], s["direction"], s["revision"]) for s in run.database(dialect)["steps"]
                 if s["check"] in ("downgrade", "upgrade")]
        assert steps == [("downgrade", "down", "b002"), ("downgrade", "down", "b001"), ("downgrade", "down", "b000"),
                         ("upgrade", "up", "b000"), ("upgrade", "up", "b001"), ("upgrade", "up", "b002")]
    window = harness(project, "--baseline", "create-all", "--from", "b001", "--checks", "upgrade,downgrade,stairway",
                     db=("sqlite", "mysql"))
    assert window.exit_code == 0, window.stdout + window.stderr
    for dialect in ("sqlite", "mysql"):
        assert window.check(dialect, "downgrade")["message"].endswith("1 revisions reverted one by one, head down to b001")
        assert {s["revision"] for s in window.database(dialect)["steps"]} == {"b002"}


def test_a_defect_above_the_baseline_fails_where_it_is(harness, tmp_path: Path) -> None:
    """b001's downgrade forgets to drop the column (pyproject ``baseline = "create-all"``): applied back, b001 fails
    on every database ("duplicate column"), in the upgrade and in the stairway, at b001; nothing else is blamed."""
    broken = replace(ADD_EMAIL, downgrade="pass")
    project = make_project(tmp_path / "p", [EMPTY_BASE, broken, CREATE_POSTS], BASELINE_MODELS)
    (project / "pyproject.toml").write_text('[tool.migration-harness]\nbaseline = "create-all"\n')
    run = harness(project, "--checks", "upgrade,downgrade,stairway")
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.report["baseline"] == "create-all"
    for dialect in ALL:
        assert run.check(dialect, "downgrade")["status"] == "passed"
        for name in ("upgrade", "stairway"):
            check = run.check(dialect, name)
            assert check["status"] == "failed" and check["revision"] == "b001", check
            assert "upgrade to b001 (add users email) failed on " + dialect in check["message"]
            assert "email" in check["message"].lower()
            assert "--baseline" not in check["message"]  # the hint is for chains run from an empty database


def test_an_unknown_baseline_is_a_usage_error(tmp_path: Path) -> None:
    from conftest import run_cli

    project = make_project(tmp_path / "p", baseline_chain(), BASELINE_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", "--baseline", "create_all"], project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown baseline 'create_all' (did you mean 'create-all'?)" in proc.stderr


#: a revision that chooses its SQL by a setting, as some apps do, and checks what the other placeholders say
BY_SETTING = Rev("a003", "comment by setting", """
    kind = os.environ["DB_KIND"]
    if kind == "postgresql":
        op.execute("COMMENT ON TABLE users IS 'people'")
    elif kind == "mysql":
        op.execute("ALTER TABLE users COMMENT = 'people'")
    bind = op.get_bind()
    assert os.environ["DB_DRIVER"] == bind.dialect.driver, (os.environ["DB_DRIVER"], bind.dialect.driver)
    assert os.environ["DB_NAME"].endswith(str(bind.engine.url.database)), os.environ["DB_NAME"]
""", "pass", imports="import os")


def test_env_sets_per_database_variables(harness, tmp_path: Path) -> None:
    """--env NAME=VALUE in each database's worker, {dialect} / {driver} / {url} filled in for that database; a
    flag wins over [tool.migration-harness.env]. With the file's fixed DB_KIND=postgresql, the revision sends
    PostgreSQL's SQL everywhere and fails on exactly SQLite and MySQL."""
    from projects import good_chain

    project = make_project(tmp_path / "p", good_chain() + [BY_SETTING], GOOD_MODELS)
    (project / "pyproject.toml").write_text('[tool.migration-harness.env]\nDB_KIND = "postgresql"\n'
                                            'DB_DRIVER = "{driver}"\nDB_NAME = "{url}"\n')
    fixed = harness(project, "--checks", "upgrade")
    assert fixed.exit_code == 1, fixed.stdout + fixed.stderr
    assert fixed.statuses("upgrade") == {"sqlite": "failed", "postgresql": "passed", "mysql": "failed"}
    for dialect in ("sqlite", "mysql"):
        assert fixed.check(dialect, "upgrade")["revision"] == "a003"
        assert "COMMENT" in fixed.check(dialect, "upgrade")["message"]
    per_database = harness(project, "--checks", "upgrade,downgrade,stairway", "--env", "DB_KIND={dialect}")
    assert per_database.exit_code == 0, per_database.stdout + per_database.stderr


def test_env_with_a_bad_name_or_placeholder_is_a_usage_error(tmp_path: Path) -> None:
    from conftest import run_cli
    from projects import good_chain

    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    for option, says in (("DB_KIND={dialekt}", "unknown placeholder {dialekt}: use {dialect}, {driver}, {url}"),
                         ("1BAD=x", "'1BAD' is not an environment variable name"),
                         ("NOVALUE", "--env NOVALUE: give NAME=VALUE")):
        proc = run_cli(["run", "--app", "app:create_app", "--env", option], project)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr


def test_a_revision_that_cannot_be_reverted_ends_the_window(harness, tmp_path: Path) -> None:
    """From the baseline, b001's downgrade refuses: that is a downgrade failure at b001 (never silent), and the
    checks after it cover what was reverted before it (b002): the upgrade back from b001 and the stairway."""
    irreversible = replace(ADD_EMAIL, downgrade='raise RuntimeError("b001 cannot be reverted")')
    project = make_project(tmp_path / "p", [EMPTY_BASE, irreversible, CREATE_POSTS], BASELINE_MODELS)
    run = harness(project, "--baseline", "create-all", "--checks", "upgrade,downgrade,stairway")
    assert run.exit_code == 1, run.stdout + run.stderr
    for dialect in ALL:
        downgrade = run.check(dialect, "downgrade")
        assert downgrade["status"] == "failed" and downgrade["revision"] == "b001", downgrade
        assert "b001 cannot be reverted" in downgrade["message"]
        assert "cover the 1 revision(s) reverted before it" in downgrade["message"]
        assert run.check(dialect, "upgrade")["message"] == ("from db.create_all() stamped at head, reverted to b001: "
                                                             "1 revisions applied one by one back to head")
        assert run.check(dialect, "stairway")["status"] == "passed"
        # the stairway session reverts the window first (stopping at b001), then walks only b002
        assert {s["revision"] for s in run.database(dialect)["steps"]
                if s["check"] == "stairway" and s["direction"] == "up"} == {"b002"}
