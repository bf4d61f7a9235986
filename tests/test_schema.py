"""[schema] checks against real databases: zero false alarms, and every kind of drift caught exactly where it
is observable."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import release
from projects import GOOD_MODELS, POSTS, USERS, Rev, good_chain, make_project, tricky_chain, TRICKY_MODELS

ALL = ("sqlite", "postgresql", "mysql")
# the checks these tests are about (the chain session only); the tricky-set test runs everything
SCHEMA = ("--checks", "schema_matches_models,no_pending_autogenerate,leaves_no_trace")


def _diffs(run, dialect: str, check: str) -> list[dict]:
    return run.check(dialect, check)["differences"]


def _only(run, dialect: str, check: str) -> dict:
    diffs = _diffs(run, dialect, check)
    assert len(diffs) == 1, diffs
    return diffs[0]


#: SQLAlchemy before 1.4 gives ``Boolean`` a CHECK constraint with no name (``create_constraint`` defaulted to True)
#: where the database has no boolean type (SQLite, MariaDB); the app's naming convention
#: ``ck_%(table_name)s_%(constraint_name)s`` cannot name it, so ``flask db upgrade`` itself fails at b001 there
#: (checked by hand with plain ``flask db upgrade`` on the 2020 stack: InvalidRequestError on SQLite and MariaDB,
#: PostgreSQL, with its native boolean, upgrades and downgrades). Not a correct chain on that stack.
UNNAMED_BOOLEAN_CHECK = release("SQLAlchemy") < (1, 4)


@pytest.mark.fast
def test_tricky_but_correct_models_pass_everything_everywhere(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", tricky_chain(), TRICKY_MODELS))
    if UNNAMED_BOOLEAN_CHECK:
        assert run.exit_code == 1, run.stdout + run.stderr
        assert run.statuses("upgrade") == {"sqlite": "failed", "postgresql": "passed", "mysql": "failed"}
        for dialect in ("sqlite", "mysql"):
            failure = run.check(dialect, "upgrade")
            assert failure["revision"] == "b001" and "InvalidRequestError: Naming convention including " \
                "%(constraint_name)s token requires that constraint is explicitly named" in failure["message"], failure
        for name in ("schema_matches_models", "no_pending_autogenerate", "downgrade", "leaves_no_trace", "stairway"):
            assert run.check("postgresql", name)["status"] == "passed", (name, run.stdout)
        return
    assert run.exit_code == 0, run.stdout + run.stderr
    for name in ("upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade", "leaves_no_trace"):
        assert run.statuses(name) == {d: "passed" for d in ALL}, (name, run.stdout)
    assert run.report["ok"] is True and run.report["head"] == "b002"


@pytest.mark.fast
def test_model_column_without_migration(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace('name = db.Column(sa.String(80), nullable=False)',
                                 'name = db.Column(sa.String(80), nullable=False)\n    email = db.Column(sa.String(120))')
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    assert run.exit_code == 1
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    assert run.statuses("no_pending_autogenerate") == {d: "failed" for d in ALL}
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["object"], diff["table"], diff["name"], diff["aspect"]) == ("column", "users", "email", "missing")
        assert "users.email" in diff["text"] and "not in the database" in diff["text"]
        assert run.check(dialect, "upgrade")["status"] == "passed"



@pytest.mark.fast
def test_pending_autogenerate_lists_each_operation_and_the_chain_goes_on(harness, tmp_path: Path) -> None:
    """What ``flask db migrate`` would write, one record each, on every alembic (before 1.14 the exception alembic
    raises carries no diffs); the check is a verdict, not a crash: downgrade and leaves_no_trace still run."""
    models = GOOD_MODELS.replace('name = db.Column(sa.String(80), nullable=False)',
                                 'name = db.Column(sa.String(80), nullable=False)\n    email = db.Column(sa.String(120))')
    models += '\n\nclass Tag(db.Model):\n    __tablename__ = "tags"\n    id = db.Column(sa.Integer, primary_key=True)\n'
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    assert run.exit_code == 1
    for dialect in ALL:
        check = run.check(dialect, "no_pending_autogenerate")
        assert check["status"] == "failed", check
        assert check["message"] == "2 operation(s) autogenerate would write into a new migration", check["message"]
        found = sorted((d["object"], d["table"], d["name"], d["aspect"]) for d in check["differences"])
        assert found == [("column", "users", "email", "missing"), ("table", "tags", "tags", "missing")], found
        assert run.check(dialect, "downgrade")["status"] == "passed"
        assert run.check(dialect, "leaves_no_trace")["status"] == "passed"

def test_length_mismatch(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace("sa.String(80)", "sa.String(100)")
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["name"], diff["aspect"]) == ("name", "type")
        assert "100" in diff["model"] and "80" in diff["database"]


def test_string_without_length_against_varchar_n(harness, tmp_path: Path) -> None:
    """alembic calls String() and VARCHAR(80) equal; the harness does not (MySQL could not even create it)."""
    models = GOOD_MODELS.replace("sa.String(80)", "sa.String()")
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA, db=("sqlite", "postgresql"))
    for dialect in ("sqlite", "postgresql"):
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["name"], diff["aspect"]) == ("name", "type") and "80" in diff["database"]


def test_nullable_mismatch(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace('name = db.Column(sa.String(80), nullable=False)', 'name = db.Column(sa.String(80), nullable=True)')
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["table"], diff["name"], diff["aspect"], diff["model"], diff["database"]) == (
            "users", "name", "nullable", True, False)


def test_server_default_mismatch(harness, tmp_path: Path) -> None:
    chain = [USERS, replace(POSTS, upgrade=POSTS.upgrade.replace(
        'sa.Column("title", sa.String(length=200), nullable=False),',
        'sa.Column("title", sa.String(length=200), nullable=False),\n        sa.Column("views", sa.Integer(), server_default="0", nullable=False),'))]
    models = GOOD_MODELS + '    views = db.Column(sa.Integer, nullable=False, server_default="1")\n'
    run = harness(make_project(tmp_path / "p", chain, models), *SCHEMA)
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["table"], diff["name"], diff["aspect"]) == ("posts", "views", "server_default")
        assert "1" in diff["model"] and "0" in diff["database"]


def test_missing_index(harness, tmp_path: Path) -> None:
    chain = [USERS, replace(POSTS, upgrade=POSTS.upgrade.split("    with op.batch_alter_table")[0],
                            downgrade='op.drop_table("posts")')]
    run = harness(make_project(tmp_path / "p", chain, GOOD_MODELS), *SCHEMA)
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["object"], diff["table"], diff["name"], diff["aspect"]) == ("index", "posts", "ix_posts_title", "missing")


def test_missing_unique_constraint(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace('    __tablename__ = "users"\n',
                                 '    __tablename__ = "users"\n    __table_args__ = (sa.UniqueConstraint("name", name="uq_users_name"),)\n')
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    for dialect in ALL:
        names = {(d["name"], d["aspect"]) for d in _diffs(run, dialect, "schema_matches_models")}
        assert ("uq_users_name", "missing") in names, names


def test_foreign_key_on_delete_mismatch(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace('sa.ForeignKey("users.id")', 'sa.ForeignKey("users.id", ondelete="CASCADE")')
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["object"], diff["table"], diff["aspect"], diff["model"]) == ("foreign_key", "posts", "on_delete", "CASCADE")
        assert diff["database"] in ("NO ACTION", "RESTRICT")


def test_check_constraint_missing(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace('    __tablename__ = "posts"\n',
                                 '    __tablename__ = "posts"\n    __table_args__ = (sa.CheckConstraint("length(title) > 0", name="title_not_empty"),)\n')
    run = harness(make_project(tmp_path / "p", good_chain(), models), *SCHEMA)
    assert run.statuses("schema_matches_models") == {d: "failed" for d in ALL}
    for dialect in ALL:
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["object"], diff["table"], diff["name"], diff["aspect"]) == (
            "check_constraint", "posts", "ck_posts_title_not_empty", "missing")


ENUM_REV = Rev("a003", "add post state", """
    sa.Enum("draft", "ready", name="post_state").create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("state", sa.Enum("draft", "ready", name="post_state"), nullable=True))
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("state")
    sa.Enum(name="post_state").drop(op.get_bind(), checkfirst=True)
""")


@pytest.mark.fast
def test_enum_values_differ_only_where_the_database_keeps_them(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS + '    state = db.Column(sa.Enum("draft", "ready", "final", name="post_state"))\n'
    run = harness(make_project(tmp_path / "p", good_chain() + [ENUM_REV], models), *SCHEMA)
    # SQLite stores a non-native VARCHAR(5): the labels are not in the database, so nothing to report there.
    if release("SQLAlchemy") < (1, 4):
        # ... but SQLAlchemy 1.3 gives a non-native Enum a CHECK, and alembic 1.4's batch mode on SQLite recreates
        # the table with it twice: as ck_posts_post_state (the naming convention) and as post_state (the Enum's own
        # name), which the models do not have (seen by hand: `flask db upgrade` on the 2020 stack, sqlite_master)
        assert run.statuses("schema_matches_models") == {"sqlite": "failed", "postgresql": "failed", "mysql": "failed"}
        diff = _only(run, "sqlite", "schema_matches_models")
        assert (diff["object"], diff["name"], diff["aspect"]) == ("check_constraint", "post_state", "extra"), diff
    else:
        assert run.statuses("schema_matches_models") == {"sqlite": "passed", "postgresql": "failed", "mysql": "failed"}
    for dialect in ("postgresql", "mysql"):
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["object"], diff["aspect"], diff["model"], diff["database"]) == (
            "enum", "values", ["draft", "ready", "final"], ["draft", "ready"])


TAGS = Rev("a003", "create tags", """
    op.create_table("tags", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")))
""", 'op.drop_table("tags")')


def test_downgrade_that_forgets_a_table(harness, tmp_path: Path) -> None:
    chain = good_chain() + [replace(TAGS, downgrade="pass")]
    models = GOOD_MODELS + '\n\nclass Tag(db.Model):\n    __tablename__ = "tags"\n    id = db.Column(sa.Integer, primary_key=True)\n'
    run = harness(make_project(tmp_path / "p", chain, models), *SCHEMA)
    assert run.statuses("downgrade") == {d: "passed" for d in ALL}
    assert run.statuses("leaves_no_trace") == {d: "failed" for d in ALL}
    for dialect in ALL:
        left = {(d["object"], d["name"]) for d in _diffs(run, dialect, "leaves_no_trace")}
        assert left == {("table", "tags")}, left


@pytest.mark.fast
def test_downgrade_that_forgets_a_postgresql_enum_type(harness, tmp_path: Path) -> None:
    forgetful = replace(ENUM_REV, downgrade="""
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("state")
""")
    models = GOOD_MODELS + '    state = db.Column(sa.Enum("draft", "ready", name="post_state"))\n'
    run = harness(make_project(tmp_path / "p", good_chain() + [forgetful], models), *SCHEMA)
    assert run.statuses("downgrade") == {d: "passed" for d in ALL}
    assert run.statuses("leaves_no_trace") == {"sqlite": "passed", "postgresql": "failed", "mysql": "passed"}
    diff = _only(run, "postgresql", "leaves_no_trace")
    assert (diff["object"], diff["name"], diff["aspect"]) == ("enum_type", "post_state", "left_behind")
    assert run.exit_code == 1


def test_ignore_table_shows_the_difference_as_ignored(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace("sa.String(80)", "sa.String(100)")
    run = harness(make_project(tmp_path / "p", good_chain(), models), "--ignore-table", "users", *SCHEMA)
    assert run.exit_code == 0, run.stdout
    for dialect in ALL:
        check = run.check(dialect, "schema_matches_models")
        assert check["status"] == "passed" and check["differences"] == []
        assert [(d["table"], d["aspect"], d["reason"]) for d in check["ignored"]] == [
            ("users", "type", "--ignore-table users")]
    assert "ignored" in run.stdout


def test_ignore_check_on_one_database(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS.replace("sa.String(80)", "sa.String(100)")
    run = harness(make_project(tmp_path / "p", good_chain(), models), "--ignore-check",
                  "schema_matches_models@mysql", *SCHEMA)
    assert run.statuses("schema_matches_models") == {"sqlite": "failed", "postgresql": "failed", "mysql": "skipped"}
    assert "ignored: --ignore-check schema_matches_models@mysql" in run.check("mysql", "schema_matches_models")["message"]


def test_sqlite_sequence_is_ignored_by_default_and_said_so(harness, tmp_path: Path) -> None:
    chain = [replace(USERS, upgrade=USERS.upgrade.replace('sa.PrimaryKeyConstraint("id", name=op.f("pk_users")))',
                                                          'sa.PrimaryKeyConstraint("id", name=op.f("pk_users")), sqlite_autoincrement=True)'))]
    models = GOOD_MODELS.split("class Post")[0].replace('__tablename__ = "users"',
                                                        '__tablename__ = "users"\n    __table_args__ = {"sqlite_autoincrement": True}')
    run = harness(make_project(tmp_path / "p", chain, models), *SCHEMA, db=("sqlite",))
    assert run.exit_code == 0, run.stdout
    # it survives `downgrade base`: leaves_no_trace shows it as ignored, with the reason, instead of failing
    ignored = run.check("sqlite", "leaves_no_trace")["ignored"]
    assert [(d["table"], d["aspect"]) for d in ignored] == [("sqlite_sequence", "left_behind")]
    assert "SQLite creates it" in ignored[0]["reason"]


def test_autoincrement_missing_where_the_database_reports_it(harness, tmp_path: Path) -> None:
    chain = [replace(USERS, upgrade=USERS.upgrade.replace('sa.Column("id", sa.Integer(), nullable=False)',
                                                          'sa.Column("id", sa.Integer(), autoincrement=False, nullable=False)')),
             POSTS]
    run = harness(make_project(tmp_path / "p", chain, GOOD_MODELS), *SCHEMA)
    # SQLite numbers every INTEGER PRIMARY KEY through its rowid: nothing to compare there
    assert run.statuses("schema_matches_models") == {"sqlite": "passed", "postgresql": "failed", "mysql": "failed"}
    for dialect in ("postgresql", "mysql"):
        diff = _only(run, dialect, "schema_matches_models")
        assert (diff["table"], diff["name"], diff["aspect"], diff["model"], diff["database"]) == (
            "users", "id", "autoincrement", True, False)
        assert diff["text"] == "column users.id: autoincrement differs: models yes, database no"


EVENTS = Rev("c001", "create events", """
    op.create_table("events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.Column("amount", sa.Numeric(10, 2), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")))
""", 'op.drop_table("events")')
EVENT_MODEL = '''
class Event(db.Model):
    __tablename__ = "events"
    id = db.Column(sa.Integer, primary_key=True)
    at = db.Column(sa.DateTime(timezone=True))
    amount = db.Column(sa.Numeric(12, 3))
'''


def test_precision_scale_everywhere_and_timezone_where_the_database_keeps_it(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", [EVENTS], EVENT_MODEL), *SCHEMA)
    for dialect in ALL:
        diffs = {d["name"]: d for d in _diffs(run, dialect, "schema_matches_models")}
        assert "12, 3" in diffs["amount"]["model"] and "10, 2" in diffs["amount"]["database"]
        # only PostgreSQL has a TIMESTAMP WITH TIME ZONE; MySQL DATETIME and SQLite keep no zone
        assert ("at" in diffs) == (dialect == "postgresql"), diffs
    assert "WITH TIME ZONE" in {d["name"]: d for d in _diffs(run, "postgresql", "schema_matches_models")}["at"]["model"]


def test_an_ignore_rule_can_match_an_aspect(harness, tmp_path: Path) -> None:
    """A server default a migration set only to fill existing rows (the model has none): ignorable by aspect,
    while a type difference in the same table still fails."""
    filled = Rev("a003", "add users.karma with a default for the rows", """
    op.add_column("users", sa.Column("karma", sa.Integer(), server_default="0", nullable=False))
""", 'op.drop_column("users", "karma")')
    models = GOOD_MODELS.replace('name = db.Column(sa.String(80), nullable=False)',
                                 'name = db.Column(sa.String(80), nullable=False)\n    karma = db.Column(sa.Integer, nullable=False)')
    project = make_project(tmp_path / "p", good_chain() + [filled], models)
    (project / "pyproject.toml").write_text('[[tool.migration-harness.ignore]]\ncheck = "schema_matches_models"\n'
                                            'aspect = "server_default"\nreason = "defaults only fill old rows"\n')
    run = harness(project, "--checks", "schema_matches_models", db=("sqlite", "postgresql"))
    assert run.exit_code == 0, run.stdout + run.stderr
    for dialect in ("sqlite", "postgresql"):
        check = run.check(dialect, "schema_matches_models")
        assert [(d["name"], d["aspect"], d["reason"]) for d in check["ignored"]] == [
            ("karma", "server_default", "defaults only fill old rows")]
    (project / "models.py").write_text((project / "models.py").read_text().replace("sa.String(80)", "sa.String(90)"))
    run = harness(project, "--checks", "schema_matches_models", db=("sqlite",))
    assert run.check("sqlite", "schema_matches_models")["status"] == "failed"


IDENTITY_MODELS = '''
class Ticket(db.Model):
    __tablename__ = "tickets"
    id = db.Column(sa.Integer, sa.Identity(), primary_key=True)
    title = db.Column(sa.String(80), nullable=False)
'''


def _tickets(identity: str) -> Rev:
    return Rev("i001", "create tickets", f"""
        op.create_table("tickets",
            sa.Column("id", sa.Integer(), {identity}nullable=False),
            sa.Column("title", sa.String(length=80), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")))
    """, 'op.drop_table("tickets")')


#: ``sa.Identity`` is SQLAlchemy 1.4's: on an older app stack (``nox -s isolated``'s 2020 one) no model can declare an
#: identity column, and the models below do not import there
NEEDS_IDENTITY = pytest.mark.skipif(release("SQLAlchemy") < (1, 4), reason="sa.Identity is SQLAlchemy 1.4+")


@NEEDS_IDENTITY
def test_identity_columns_are_compared_with_their_options(harness, tmp_path: Path) -> None:
    """An identity column as the model says (what privacyIDEA's create_all makes): a pass everywhere, not the error
    alembic 1.18 raised reading the reflected Identity ("'Identity' object has no attribute 'arg'"). A model
    identity with another start, or a chain that makes a SERIAL where the model says identity, is a difference on
    PostgreSQL (where identity columns exist) and nowhere else (there both are plain auto-numbering)."""
    same = harness(make_project(tmp_path / "same", [_tickets("sa.Identity(always=False), ")], IDENTITY_MODELS),
                   "--checks", "schema_matches_models,no_pending_autogenerate")
    assert same.exit_code == 0, same.stdout + same.stderr
    assert same.statuses("schema_matches_models") == {d: "passed" for d in ALL}

    started = IDENTITY_MODELS.replace("sa.Identity()", "sa.Identity(start=100)")
    other = harness(make_project(tmp_path / "start", [_tickets("sa.Identity(always=False), ")], started),
                    "--checks", "schema_matches_models")
    serial = harness(make_project(tmp_path / "serial", [_tickets("")], IDENTITY_MODELS),
                     "--checks", "schema_matches_models")
    for run, model, database in (
            (other, "GENERATED BY DEFAULT AS IDENTITY (start 100)", "GENERATED BY DEFAULT AS IDENTITY (start 1, increment 1)"),
            (serial, "GENERATED BY DEFAULT AS IDENTITY", None)):
        assert run.exit_code == 1, run.stdout + run.stderr
        assert run.statuses("schema_matches_models") == {"sqlite": "passed", "postgresql": "failed", "mysql": "passed"}
        diff = _only(run, "postgresql", "schema_matches_models")
        assert (diff["object"], diff["table"], diff["name"], diff["aspect"]) == ("column", "tickets", "id", "identity")
        assert (diff["model"], diff["database"]) == (model, database), diff


@NEEDS_IDENTITY
def test_a_model_sequence_against_an_identity_column_is_a_difference_on_postgresql(harness, tmp_path: Path) -> None:
    """privacyIDEA's shape: the model numbers rows with a Sequence, the chain creates an identity column. A fresh
    install (create_all) and a migrated database differ on PostgreSQL, and the difference says both sides."""
    models = IDENTITY_MODELS.replace("sa.Identity()", 'sa.Sequence("tickets_seq")')
    run = harness(make_project(tmp_path / "p", [_tickets("sa.Identity(always=False), ")], models),
                  "--checks", "schema_matches_models", db=("sqlite", "postgresql"))
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.statuses("schema_matches_models") == {"sqlite": "passed", "postgresql": "failed"}
    texts = sorted(d["text"] for d in _diffs(run, "postgresql", "schema_matches_models"))
    assert texts == ["column tickets.id: identity differs: models none (Sequence tickets_seq), database "
                     "GENERATED BY DEFAULT AS IDENTITY (start 1, increment 1)",
                     # the ORM inserts nextval('tickets_seq'): the chain never creates it
                     "sequence tickets_seq on tickets (numbers tickets.id): in the models but not in the database"]


SEQUENCE_CHAIN = [Rev("s001", "create tickets and their sequence", """
    op.execute(sa.schema.CreateSequence(sa.Sequence("tickets_seq")))
    op.create_table("tickets",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")))
""", """
    op.drop_table("tickets")
    op.execute(sa.schema.DropSequence(sa.Sequence("tickets_seq")))
""")]


def test_a_column_numbered_by_a_model_sequence_is_not_an_autoincrement_difference(harness, tmp_path: Path) -> None:
    """``sa.Sequence("tickets_seq")`` on the model (privacyIDEA numbers 39 tables so): create_all makes the sequence
    and a column without a default, as this chain does; PostgreSQL passes (it said "autoincrement differs: models
    yes, database no" before). Without the sequence, the difference is the missing sequence."""
    models = IDENTITY_MODELS.replace("sa.Identity()", 'sa.Sequence("tickets_seq")')
    run = harness(make_project(tmp_path / "p", SEQUENCE_CHAIN, models), "--checks", "schema_matches_models",
                  db=("postgresql",))
    assert run.exit_code == 0, run.stdout + run.stderr
    forgot = replace(SEQUENCE_CHAIN[0], upgrade=SEQUENCE_CHAIN[0].upgrade.replace(
        '    op.execute(sa.schema.CreateSequence(sa.Sequence("tickets_seq")))\n', ""),
        downgrade='    op.drop_table("tickets")')
    run = harness(make_project(tmp_path / "q", [forgot], models), "--checks", "schema_matches_models",
                  db=("postgresql",))
    assert run.exit_code == 1, run.stdout + run.stderr
    diff = _only(run, "postgresql", "schema_matches_models")
    assert (diff["object"], diff["name"], diff["aspect"]) == ("sequence", "tickets_seq", "missing"), diff
