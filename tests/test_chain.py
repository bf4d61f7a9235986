"""[chain] single_head, stairway and data against real databases: a correct chain passes everywhere, a broken
one fails on exactly the databases where it breaks, naming the revision."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from projects import GOOD_MODELS, POSTS, USERS, Rev, good_chain, make_project

ALL = ("sqlite", "postgresql", "mysql")
TAGS_MODEL = '\n\nclass Tag(db.Model):\n    __tablename__ = "tags"\n    id = db.Column(sa.Integer, primary_key=True)\n'


def branch(revision: str, table: str) -> Rev:
    return Rev(revision, f"create {table}", f"""
    op.create_table("{table}", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_{table}")))
""", f'op.drop_table("{table}")', down_revision="a002")


TWO_HEADS = good_chain() + [branch("a003", "tags"), branch("a004", "notes")]
TWO_HEADS_MODELS = GOOD_MODELS + TAGS_MODEL + TAGS_MODEL.replace("Tag", "Note").replace("tags", "notes")


@pytest.mark.fast
def test_two_heads_fail_single_head_with_every_head_and_the_branch_point(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", TWO_HEADS, TWO_HEADS_MODELS))
    assert run.exit_code == 1
    assert run.statuses("single_head") == {d: "failed" for d in ALL}
    check = run.check("postgresql", "single_head")
    assert "a003 (create tags)" in check["message"] and "a004 (create notes)" in check["message"]
    texts = [d["text"] for d in check["differences"]]
    assert "branch point a002 (create posts) -> a003, a004" in texts
    # the rest of the chain still runs, one branch at a time, and passes
    for name in ("upgrade", "downgrade", "leaves_no_trace", "stairway"):
        assert run.statuses(name) == {d: "passed" for d in ALL}, (name, run.stdout)


def test_several_heads_can_be_allowed(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", TWO_HEADS, TWO_HEADS_MODELS), "--allow-multiple-heads", db=("sqlite",))
    assert run.exit_code == 0, run.stdout
    assert run.check("sqlite", "single_head")["status"] == "passed"


INDEX_REV = Rev("a003", "index post titles twice", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_index("ix_posts_title_again", ["title"], unique=False)
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_index("ix_posts_title_again")
""")
INDEX_MODELS = GOOD_MODELS.replace('    title = db.Column(sa.String(200), nullable=False, index=True)\n',
                                   '    title = db.Column(sa.String(200), nullable=False, index=True)\n'
                                   '    __table_args__ = (sa.Index("ix_posts_title_again", "title"),)\n')


def test_stairway_passes_a_correct_chain(harness, tmp_path: Path) -> None:
    run = harness(make_project(tmp_path / "p", good_chain() + [INDEX_REV], INDEX_MODELS), "--checks", "stairway")
    assert run.exit_code == 0, run.stdout
    assert [c["name"] for c in run.database("mysql")["checks"]] == ["stairway"]


@pytest.mark.fast
def test_a_downgrade_that_leaves_an_index_fails_the_stairway_at_that_revision(harness, tmp_path: Path) -> None:
    chain = good_chain() + [replace(INDEX_REV, downgrade="pass")]
    run = harness(make_project(tmp_path / "p", chain, INDEX_MODELS))
    # a single up-then-down run misses it: dropping posts later takes the index with it
    assert run.statuses("downgrade") == {d: "passed" for d in ALL}
    assert run.statuses("leaves_no_trace") == {d: "passed" for d in ALL}
    assert run.statuses("stairway") == {d: "failed" for d in ALL}
    for dialect in ALL:
        check = run.check(dialect, "stairway")
        assert check["revision"] == "a003"
        assert check["message"].startswith(
            f"upgrade again: upgrade to a003 (index post titles twice) failed on {dialect}: "), check["message"]
        assert "ix_posts_title_again" in check["message"]


ENUM_REV = Rev("a003", "add post state", """
    sa.Enum("draft", "ready", name="post_state").create(op.get_bind(), checkfirst=False)
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("state", sa.Enum("draft", "ready", name="post_state", create_type=False), nullable=True))
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("state")
""")


def test_an_enum_type_left_behind_fails_the_stairway_on_postgresql_only(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS + '    state = db.Column(sa.Enum("draft", "ready", name="post_state"))\n'
    run = harness(make_project(tmp_path / "p", good_chain() + [ENUM_REV], models), "--checks", "stairway")
    assert run.statuses("stairway") == {"sqlite": "passed", "postgresql": "failed", "mysql": "passed"}
    check = run.check("postgresql", "stairway")
    assert check["revision"] == "a003" and "upgrade again" in check["message"]
    assert 'type "post_state" already exists' in check["message"]


NOT_NULL_REV = Rev("a003", "add post summary", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("summary", sa.String(length=50), nullable=False))
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("summary")
""")


@pytest.mark.fast
def test_not_null_column_without_default_fails_only_with_rows(harness, tmp_path: Path) -> None:
    models = GOOD_MODELS + '    summary = db.Column(sa.String(50), nullable=False)\n'
    run = harness(make_project(tmp_path / "p", good_chain() + [NOT_NULL_REV], models))
    assert run.statuses("upgrade") == {d: "passed" for d in ALL}  # the empty database takes it
    # MariaDB (strict mode) fills '' into the existing rows; PostgreSQL and SQLite refuse
    assert run.statuses("data") == {"sqlite": "failed", "postgresql": "failed", "mysql": "passed"}
    for dialect in ("sqlite", "postgresql"):
        check = run.check(dialect, "data")
        assert check["revision"] == "a003"
        assert "rows in the tables, upgrade to a003 (add post summary) failed on" in check["message"]
        assert "summary" in check["message"]


SLUG_REV = Rev("a003", "backfill post slugs", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("slug", sa.String(length=200), nullable=True))
    op.execute("UPDATE posts SET slug = LOWER(title)")
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("slug")
""")
SLUG_MODELS = GOOD_MODELS + '    slug = db.Column(sa.String(200))\n'
SLUG_DATA = '''
import sqlalchemy as sa

ROWS = {"a002": {"users": [{"id": 501, "name": "ada"}],
                 "posts": [{"id": 501, "user_id": 501, "title": "Hello"}]}}


def after_a003(conn):
    slug = conn.execute(sa.text("SELECT slug FROM posts WHERE id = 501")).scalar()
    assert slug == "hello", f"slug is {slug!r}"
'''


@pytest.mark.fast
def test_a_data_migration_whose_result_is_asserted(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [SLUG_REV], SLUG_MODELS)
    (project / "migrations" / "harness_data.py").write_text(SLUG_DATA)
    run = harness(project, "--checks", "data")
    assert run.exit_code == 0, run.stdout
    assert "1 assertion(s) of harness_data.py held" in run.check("postgresql", "data")["message"]


def test_a_data_migration_that_does_not_do_its_job_fails_its_assertion(harness, tmp_path: Path) -> None:
    forgetful = replace(SLUG_REV, upgrade=SLUG_REV.upgrade.replace('op.execute("UPDATE posts SET slug = LOWER(title)")', ""))
    project = make_project(tmp_path / "p", good_chain() + [forgetful], SLUG_MODELS)
    (project / "migrations" / "harness_data.py").write_text(SLUG_DATA)
    run = harness(project, "--checks", "data")
    assert run.statuses("data") == {d: "failed" for d in ALL}
    check = run.check("mysql", "data")
    assert check["revision"] == "a003" and "after_a003" in check["message"] and "slug is None" in check["message"]


PURGE_REV = Rev("a004", "purge tags", 'op.execute("DELETE FROM tags")', "pass")
TAGS_REV = Rev("a003", "create tags", """
    op.create_table("tags", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")))
""", 'op.drop_table("tags")')


def test_a_step_that_loses_rows_fails_data_unless_ignored(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [TAGS_REV, PURGE_REV], GOOD_MODELS + TAGS_MODEL)
    run = harness(project, "--checks", "data")
    assert run.statuses("data") == {d: "failed" for d in ALL}
    lost = run.check("sqlite", "data")
    assert lost["revision"] == "a004"
    assert [(d["table"], d["aspect"], d["after"]) for d in lost["differences"]] == [("tags", "rows_lost", 0)]
    project_toml = project / "pyproject.toml"
    project_toml.write_text('[[tool.migration-harness.ignore]]\ncheck = "data"\ntable = "tags"\n'
                            'reason = "a004 purges tags on purpose"\n')
    run = harness(project, "--checks", "data")
    assert run.statuses("data") == {d: "passed" for d in ALL}, run.stdout


def test_a_window_of_the_chain(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [TAGS_REV], GOOD_MODELS + TAGS_MODEL)
    run = harness(project, "--from", "a001", "--to", "a002", db=("sqlite", "postgresql"))
    assert run.exit_code == 0, run.stdout
    upgrade = run.check("postgresql", "upgrade")
    assert upgrade["message"] == "1 revisions applied one by one, a001 to a002"
    assert run.check("postgresql", "schema_matches_models")["status"] == "skipped"
    assert "--to stops at a002" in run.check("postgresql", "schema_matches_models")["message"]
    # the window's revision is tested both ways, and what it made is gone again
    assert run.statuses("leaves_no_trace") == {"sqlite": "passed", "postgresql": "passed"}


def test_a_window_catches_a_defect_inside_it_only(harness, tmp_path: Path) -> None:
    broken_posts = replace(POSTS, upgrade=POSTS.upgrade.replace('sa.String(length=200)', "sa.String()"))
    project = make_project(tmp_path / "p", [USERS, broken_posts, TAGS_REV], GOOD_MODELS + TAGS_MODEL)
    inside = harness(project, "--from", "a001", "--checks", "upgrade", db=("mysql",))
    assert inside.check("mysql", "upgrade")["revision"] == "a002"
    outside = harness(project, "--from", "a002", "--checks", "upgrade", db=("mysql",))
    assert outside.check("mysql", "upgrade")["status"] == "failed"
    assert "before --from" in outside.check("mysql", "upgrade")["message"]


def test_unknown_check_and_revision_are_usage_errors(harness, tmp_path: Path) -> None:
    from conftest import run_cli
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", "--checks", "upgrade,speed"], project)
    assert proc.returncode == 2 and "unknown check(s) speed" in proc.stderr
    proc = run_cli(["run", "--app", "app:create_app", "--from", "zzz", "--db", "sqlite"], project)
    assert proc.returncode == 2 and "revision 'zzz' is not in the history" in proc.stderr


def test_a_broken_data_module_is_a_usage_error(tmp_path: Path) -> None:
    from conftest import run_cli
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "migrations" / "harness_data.py").write_text("ROWS = {\n")
    proc = run_cli(["run", "--app", "app:create_app", "--db", "sqlite"], project)
    assert proc.returncode == 2
    assert "harness_data.py failed to load: SyntaxError" in proc.stderr


MERGE = Rev("a005", "merge tags and notes", "pass", "pass", down_revision=("a003", "a004"))


def test_a_merge_revision_reverts_in_one_step_on_every_database(harness, tmp_path: Path) -> None:
    """Two branches and their merge: the chain goes down through the merge (``<merge>@-1`` is an ambiguous walk
    for alembic: the harness reverts the merge alone) and the stairway passes on it, everywhere."""
    run = harness(make_project(tmp_path / "p", TWO_HEADS + [MERGE], TWO_HEADS_MODELS),
                  "--checks", "single_head,upgrade,downgrade,leaves_no_trace,stairway")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["heads"] == ["a005"]
    for name in ("upgrade", "downgrade", "leaves_no_trace", "stairway"):
        assert run.statuses(name) == {d: "passed" for d in ALL}, (name, run.stdout)
