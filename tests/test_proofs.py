"""[proofs] `rehearse` asks production itself, read-only, whether each pending step can fail on its rows.

A "production" at a003 holds rows; six pending revisions each do something existing rows can make fail (a unique
constraint, a shorter VARCHAR, a foreign key, a CHECK, SET NOT NULL, then two data migrations). The rehearsal copies
no rows (the default), so every step passes on the copy: only the proofs can tell. With dirty rows each step is
decided `fails` with the count the database itself would trip on; with clean rows each is `passes`; a data
migration whose WHERE matches no row of production is proved, one that touches rows is `unproved` until the
rehearsal held every row of its table. Production is compared before and after.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from projects import GOOD_MODELS, Rev, good_chain, make_project
from test_rehearse import (_engine, catalogue_checksum, flask_upgrade, production, rehearse,  # noqa: F401
                           sqlite_file_state)

EXTRA = Rev("a003", "nickname, editor and state", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("nickname", sa.String(length=40), nullable=True))
    state = sa.Enum("draft", "published", "archived", name="post_state")
    state.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("editor_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("state", state, nullable=False, server_default="draft"))
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("editor_id")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("nickname")
""")
PENDING = [
    Rev("p001", "unique user names", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_unique_constraint("uq_users_name", ["name"])
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_name", type_="unique")
"""),
    Rev("p002", "shorter titles", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.alter_column("title", type_=sa.String(length=6), existing_type=sa.String(length=200),
                              existing_nullable=False)
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.alter_column("title", type_=sa.String(length=200), existing_type=sa.String(length=6))
"""),
    Rev("p003", "posts editor fk", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_foreign_key("fk_posts_editor_id_users", "users", ["editor_id"], ["id"])
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_constraint("fk_posts_editor_id_users", type_="foreignkey")
"""),
    Rev("p004", "names are not x", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_check_constraint("name_not_x", "name <> 'x'")
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("ck_users_name_not_x", type_="check")
"""),
    Rev("p005", "nickname required", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("nickname", existing_type=sa.String(length=40), nullable=False)
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("nickname", existing_type=sa.String(length=40), nullable=True)
"""),
    Rev("p006", "default nicknames", """
    op.execute("UPDATE users SET nickname = name WHERE nickname = ''")
""", "pass"),
    Rev("p007", "shout titles", """
    op.execute("UPDATE posts SET title = upper(title)")
""", """
    op.execute("UPDATE posts SET title = lower(title)")
"""),
    # PostgreSQL: the usual way to drop a label (a new type, USING); elsewhere an ALTER of the column's type
    Rev("p008", "retire archived", """
    new = sa.Enum("draft", "published", name="post_state")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TYPE post_state RENAME TO post_state_old")
        new.create(bind)
        op.alter_column("posts", "state", server_default=None)
        op.alter_column("posts", "state", type_=new, existing_nullable=False,
                        postgresql_using="state::text::post_state")
        op.alter_column("posts", "state", server_default="draft")
        op.execute("DROP TYPE post_state_old")
    else:
        with op.batch_alter_table("posts") as batch_op:
            batch_op.alter_column("state", type_=new, existing_nullable=False, existing_server_default="draft",
                                  existing_type=sa.Enum("draft", "published", "archived", name="post_state"))
""", "pass"),
    # a CHECK on a column added in the same step: asked with the value every existing row gets (0)
    Rev("p009", "read counts", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("read_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint("read_count_non_negative", "read_count >= 0")
""", "pass"),
]
MODELS = '''
class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("name <> 'x'", name="name_not_x"),)
    id = db.Column(sa.Integer, primary_key=True)
    name = db.Column(sa.String(80), nullable=False, unique=True)
    nickname = db.Column(sa.String(40), nullable=False)


class Post(db.Model):
    __tablename__ = "posts"
    __table_args__ = (sa.CheckConstraint("read_count >= 0", name="read_count_non_negative"),)
    id = db.Column(sa.Integer, primary_key=True)
    user_id = db.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=False)
    title = db.Column(sa.String(6), nullable=False, index=True)
    editor_id = db.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=True)
    state = db.Column(sa.Enum("draft", "published", name="post_state"), nullable=False, server_default="draft")
    read_count = db.Column(sa.Integer, nullable=False, server_default="0")
'''
#: rows every pending step trips on: 2 duplicate names (ann, bob), a user named x, 3 users without a nickname,
#: 4 titles longer than 6 characters, 2 posts whose editor does not exist, 2 archived posts
DIRTY_USERS = [{"id": 1, "name": "ann", "nickname": "a"}, {"id": 2, "name": "ann", "nickname": None},
               {"id": 3, "name": "bob", "nickname": "b"}, {"id": 4, "name": "bob", "nickname": None},
               {"id": 5, "name": "x", "nickname": None}, {"id": 6, "name": "cy", "nickname": "c"}]
DIRTY_POSTS = [{"id": i, "user_id": 1 + i % 6, "title": "a long title" if i <= 4 else f"p{i}",
                "editor_id": 99 if i in (5, 6) else (None if i == 7 else 1 + i % 6),
                "state": "archived" if i in (8, 9) else "published"} for i in range(1, 10)]
CLEAN_USERS = [{"id": i, "name": f"user{i}", "nickname": f"n{i}"} for i in range(1, 7)]
CLEAN_POSTS = [{"id": i, "user_id": 1 + i % 6, "title": f"p{i}", "editor_id": None if i == 7 else 1 + i % 6,
                "state": "draft"} for i in range(1, 10)]


def _production(tmp_path: Path, make: Any, dialect: str, users: list[dict], posts: list[dict],
                chain: list[Rev], models: str, at: str = "a003") -> tuple[Path, str]:
    import sqlalchemy as sa

    project = make_project(tmp_path / f"p-{dialect}", chain, models)
    url = make(dialect)
    flask_upgrade(project, url, at)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            md = sa.MetaData()
            md.reflect(bind=conn, only=["users", "posts"])
            if users:
                conn.execute(md.tables["users"].insert(), users)
            if posts:
                conn.execute(md.tables["posts"].insert(), posts)
    finally:
        engine.dispose()
    return project, url


def _proofs(report: dict[str, Any]) -> dict[str, list[tuple[str, str, Any]]]:
    return {s["revision"]: [(p["kind"], p["decides"], p["count"]) for p in s["proofs"]] for s in report["steps"]}


def _unchanged(url: str) -> Any:
    return sqlite_file_state(url) if url.startswith("sqlite") else catalogue_checksum(url)


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_each_kind_of_step_fails_on_dirty_rows_with_the_count(dialect, server_urls, production, tmp_path) -> None:
    chain = good_chain() + [EXTRA] + PENDING
    project, url = _production(tmp_path, production, dialect, DIRTY_USERS, DIRTY_POSTS, chain, MODELS)
    before = _unchanged(url)
    proc, report = rehearse(project, url, server_urls)
    assert _unchanged(url) == before, "production changed"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["verdict"] == "unsafe"
    # every step passed on the copy (it holds no rows): the proofs alone decide
    assert [s["status"] for s in report["steps"]] == ["passed"] * 9
    enforced = dialect != "sqlite"  # SQLite stores any length and checks no old row against a new foreign key
    assert _proofs(report) == {
        "p001": [("unique", "fails", 2)],
        "p002": [("length", "fails" if enforced else "passes", 4 if enforced else None)],
        "p003": [("foreign-key", "fails", 2)] if enforced else [("foreign-key", "passes", None)],
        "p004": [("check", "fails", 1)],
        "p005": [("not-null", "fails", 3)],
        "p006": [("data", "passes", 0)],
        "p007": [("data", "unproved", 9)],
        "p008": [("enum", "fails", 2)] if enforced else [],  # SQLite: a VARCHAR without a CHECK keeps any label
        "p009": [("check", "passes", 0)],
    }
    assert [s["proof"] for s in report["steps"]] == (
        ["fails"] * 5 + ["proved", "unproved", "fails", "proved"] if enforced
        else ["fails", "proved", "proved", "fails", "fails", "proved", "unproved", "none", "proved"])
    unique = report["steps"][0]["proofs"][0]
    assert unique["text"] == "2 value(s) of (name) occur more than once in users: unique (name) on users fails"
    assert unique["sql"].startswith("SELECT count(*)") and "GROUP BY" in unique["sql"]
    assert any(r.startswith("pending migration p005 (nickname required) fails on production's rows: 3 row(s) of "
                            "users have nickname NULL") for r in report["reasons"])
    assert "proof FAILS" in proc.stdout and "verdict: UNSAFE" in proc.stdout
    assert report["source"]["statements"] > 0


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_clean_rows_prove_every_step_and_a_data_migration_needs_every_row(dialect, server_urls, production,
                                                                           tmp_path) -> None:
    chain = good_chain() + [EXTRA] + PENDING
    project, url = _production(tmp_path, production, dialect, CLEAN_USERS, CLEAN_POSTS, chain, MODELS)
    before = _unchanged(url)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # nothing fails; the data migration is not proved
    assert report["verdict"] == "unproved" and report["reasons"] == []
    enum = ["proved"] if dialect != "sqlite" else ["none"]
    assert [s["proof"] for s in report["steps"]] == ["proved"] * 6 + ["unproved"] + enum + ["proved"]
    [why] = report["unproved"]
    assert why == ("p007 (shout titles): writes rows in a data migration (UPDATE posts SET title = upper(title)); it "
                   "touches 9 of production's 9 row(s) of posts and the rehearsal held 0 of them: pass --sample-rows 9 "
                   "(or more) to rehearse it on every row")
    assert report["steps"][5]["proofs"][0]["text"].endswith("it touches no row of users in production")
    assert "verdict: UNPROVED" in proc.stdout
    # the same production with every row in the rehearsal: the data migration ran on all of them
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "100")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["verdict"] == "safe" and report["unproved"] == []
    assert [s["proof"] for s in report["steps"]] == ["proved"] * 7 + enum + ["proved"]
    assert _unchanged(url) == before, "production changed"


TUTORIAL_EMAIL = Rev("a003", "add users email", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=120), nullable=False))
        batch_op.create_unique_constraint("uq_users_email", ["email"])
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_email", type_="unique")
        batch_op.drop_column("email")
""")
def users_with(column: str) -> str:
    """The good chain's models with one more line in ``User`` after ``name``."""
    name = '    name = db.Column(sa.String(80), nullable=False)\n'
    return GOOD_MODELS.replace(name, f"{name}    {column}\n")


TUTORIAL_MODELS = users_with("email = db.Column(sa.String(120), nullable=False, unique=True)")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_the_tutorial_not_null_unique_email_is_unsafe_by_default(dialect, server_urls, production, tmp_path) -> None:
    """The issue's case: `email ... nullable=False, unique=True` on a users table with rows; before the proofs,
    rehearse said SAFE with its defaults and `flask db upgrade` then failed on production."""
    users = [{"id": i, "name": f"user{i}"} for i in range(1, 4)]
    project, url = _production(tmp_path, production, dialect, users, [], good_chain() + [TUTORIAL_EMAIL],
                               TUTORIAL_MODELS, at="a002")
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert step["status"] == "passed" and step["proof"] == "fails"
    if dialect == "mysql":  # MariaDB fills '' into the 3 rows: NOT NULL passes, then they collide
        assert [(p["kind"], p["decides"], p["count"]) for p in step["proofs"]] == [
            ("not-null", "passes", 3), ("unique", "fails", 3)]
    else:
        assert [(p["kind"], p["decides"], p["count"]) for p in step["proofs"]][0] == ("not-null", "fails", 3)
        assert step["proofs"][0]["text"] == ("3 row(s) of users would get NULL in users.email, added NOT NULL "
                                             "without a server default: the step fails")
    # confirmed the way a release manager would find out: plain `flask db upgrade` on production fails
    import subprocess
    import sys

    from conftest import cli_env

    env = cli_env({"DATABASE_URL": url, "FLASK_APP": "app:create_app"})
    env["PYTHONPATH"] = str(project)
    upgrade = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=120)
    assert upgrade.returncode != 0


#: the example app's slug backfill, reduced: read the rows, write each one (only if there are any), then require
#: and index what was written. On a copy without rows the writes never happen: the NOT NULL that follows must not be
#: judged on production's NULLs as if nothing had filled them (that would be a false alarm).
BACKFILL = Rev("a003", "backfill codes", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("code", sa.String(length=40), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("code", sa.String))
    conn = op.get_bind()
    rows = [{"uid": uid, "new": f"{name}-{uid}"} for uid, name in conn.execute(sa.select(users.c.id, users.c.name))]
    if rows:
        conn.execute(users.update().where(users.c.id == sa.bindparam("uid")).values(code=sa.bindparam("new")), rows)
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("code", existing_type=sa.String(length=40), nullable=False)
        batch_op.create_unique_constraint("uq_users_code", ["code"])
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_code", type_="unique")
        batch_op.drop_column("code")
""")
BACKFILL_MODELS = users_with("code = db.Column(sa.String(40), nullable=False, unique=True)")


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_what_follows_a_data_migration_that_reads_rows_is_not_judged_without_them(dialect, server_urls, production,
                                                                                  tmp_path) -> None:
    users = [{"id": i, "name": f"user{i}"} for i in range(1, 5)]
    project, url = _production(tmp_path, production, dialect, users, [], good_chain() + [BACKFILL], BACKFILL_MODELS,
                               at="a002")
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # not 1: `flask db upgrade` passes there
    [step] = report["steps"]
    assert [(p["kind"], p["decides"]) for p in step["proofs"]] == [
        ("data", "unproved"), ("not-null", "unproved"), ("unique", "unproved")]
    assert step["proofs"][1]["text"].startswith("not known: a003 (backfill codes) read rows of users")
    # with every row in the rehearsal the backfill ran on all of them, and what follows is proved by it
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["steps"][0]["proof"] == "proved"


#: CTFd 5c98d9253f56's shape: the same SELECT (bound parameters) sent once per pass of a loop, an UPDATE per row
LOOP_READ = Rev("p001", "shout some titles", """
    posts = sa.table("posts", sa.column("id"), sa.column("title"))
    bind = op.get_bind()
    for word in ("p1", "p2", "p3"):
        for row in bind.execute(posts.select().where(posts.c.title.like(f"%{word}%"))).fetchall():
            bind.execute(posts.update().where(posts.c.id == row.id).values(title=row.title.upper()))
""", "pass")
#: the models at a003 (EXTRA's columns)
EXTRA_MODELS = GOOD_MODELS.replace(
    '    name = db.Column(sa.String(80), nullable=False)\n',
    '    name = db.Column(sa.String(80), nullable=False)\n'
    '    nickname = db.Column(sa.String(40), nullable=True)\n').replace(
    '    title = db.Column(sa.String(200), nullable=False, index=True)\n',
    '    title = db.Column(sa.String(200), nullable=False, index=True)\n'
    '    editor_id = db.Column(sa.Integer, nullable=True)\n'
    '    state = db.Column(sa.Enum("draft", "published", "archived", name="post_state"), nullable=False,'
    ' server_default="draft")\n')


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_a_statement_sent_in_a_loop_is_one_proof(dialect, server_urls, production, tmp_path) -> None:
    """Found on CTFd: a data migration that sends one SELECT per pass of a loop got one identical `unproved` line per
    pass (four for 5c98d9253f56), in the step and in the verdict."""
    project, url = _production(tmp_path, production, dialect, CLEAN_USERS, CLEAN_POSTS,
                               good_chain() + [EXTRA, LOOP_READ], EXTRA_MODELS)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert _proofs(report) == {"p001": [("data", "unproved", 9)]}
    [why] = report["unproved"]
    assert "production holds 9 row(s) of posts and the rehearsal held 0 of them: pass --sample-rows 9" in why
    assert proc.stdout.count("proof UNPROVED") == 1
    # every row in the rehearsal: the SELECT and the UPDATE it drives ran on all of them, one proof each
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "100")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert [p["decides"] for p in step["proofs"]] == ["passes"] * len(step["proofs"])
    assert len({p["text"] for p in step["proofs"]}) == len(step["proofs"])


@pytest.mark.fast
def test_no_union_type_is_evaluated_at_run_time() -> None:
    """`int | None` outside an annotation raises TypeError on Python 3.9 (pyproject's floor) when the module is
    imported: proofs.py's `Decide = Callable[[int | None, ...]]` made `rehearse` unusable there."""
    import ast

    import harness

    offenders = []
    for path in sorted(Path(harness.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text())
        annotations = {id(n) for node in ast.walk(tree)
                       for n in ([node.annotation] if isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation
                                 else [node.returns] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                                 and node.returns else [])
                       for n in ast.walk(n)}
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in annotations and \
                    any(isinstance(side, ast.Constant) and side.value is None for side in (node.left, node.right)):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


#: Mailu fc099bd15cbe's shape: an UPDATE with bound parameters (not counted on production), then a later step changes
#: another column of the same table
BOUND_UPDATE = Rev("p001", "rename ann", """
    users = sa.table("users", sa.column("name"))
    op.get_bind().execute(users.update().where(users.c.name == "ann").values(name="anne"))
""", "pass")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_an_update_with_bound_parameters_leaves_the_other_columns_provable(dialect, server_urls, production,
                                                                            tmp_path) -> None:
    """Found on Mailu: fc099bd15cbe's `UPDATE domain SET max_users=%(max_users)s ...` made every column of `domain`
    unknown, so 3b7eee912b41's change of `max_quota_bytes` was `unproved`; here the later NOT NULL fails on 3 rows
    and was reported `unproved` (exit 5) instead of `unsafe`."""
    chain = good_chain() + [EXTRA, BOUND_UPDATE, PENDING[4]]
    models = EXTRA_MODELS.replace('nickname = db.Column(sa.String(40), nullable=True)',
                                  'nickname = db.Column(sa.String(40), nullable=False)')
    project, url = _production(tmp_path, production, dialect, DIRTY_USERS, [], chain, models)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _proofs(report) == {"p001": [("data", "unproved", 6)], "p005": [("not-null", "fails", 3)]}
    assert any(r.startswith("pending migration p005 (nickname required) fails on production's rows: 3 row(s)")
               for r in report["reasons"])
    # the verdict line counts what failed and, apart, what could not be proved (both are listed under it)
    assert (f"verdict: UNSAFE ({len(report['reasons'])} reason(s); {len(report['unproved'])} more thing(s) could "
            "not be proved)") in proc.stdout, proc.stdout


#: microblog 834b1a697901's shape: a nullable column added, then a unique index (and here a foreign key) on it
NULL_UNIQUE = Rev("p001", "user tokens", """
    op.add_column("users", sa.Column("token", sa.String(length=32), nullable=True))
    op.create_index("ix_users_token", "users", ["token"], unique=True)
    op.add_column("posts", sa.Column("reviewer_id", sa.Integer(), nullable=True))
    op.create_foreign_key("fk_posts_reviewer_id_users", "posts", "users", ["reviewer_id"], ["id"])
""", """
    op.drop_constraint("fk_posts_reviewer_id_users", "posts", type_="foreignkey")
    op.drop_column("posts", "reviewer_id")
    op.drop_index("ix_users_token", table_name="users")
    op.drop_column("users", "token")
""")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_unique_index_or_foreign_key_on_a_column_just_added_empty_is_proved(dialect, server_urls, production,
                                                                              tmp_path) -> None:
    """Found on microblog: 834b1a697901's unique index on a column the same step adds (NULL in every existing row)
    was reported as a step with nothing that depends on existing rows (`none`): it does depend on them, and is
    proved by what they hold."""
    models = EXTRA_MODELS.replace(
        "    nickname = db.Column(sa.String(40), nullable=True)\n",
        "    nickname = db.Column(sa.String(40), nullable=True)\n"
        "    token = db.Column(sa.String(32), nullable=True, unique=True, index=True)\n").replace(
        "    editor_id = db.Column(sa.Integer, nullable=True)\n",
        "    editor_id = db.Column(sa.Integer, nullable=True)\n"
        '    reviewer_id = db.Column(sa.Integer, sa.ForeignKey("users.id", name="fk_posts_reviewer_id_users"))\n')
    project, url = _production(tmp_path, production, dialect, CLEAN_USERS, CLEAN_POSTS,
                               good_chain() + [EXTRA, NULL_UNIQUE], models)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert step["proof"] == "proved"
    assert [(p["kind"], p["decides"], p["count"], p["sql"]) for p in step["proofs"]] == [
        ("unique", "passes", None, None), ("foreign-key", "passes", None, None)]
    assert step["proofs"][0]["text"].startswith("every existing row of users holds NULL in token")


#: Mailu fc099bd15cbe's shape: UPDATEs built with SQLAlchemy, their values (numbers) sent as bound parameters; then
#: the same UPDATE sent in a loop with values of its own each time
NUMERIC_UPDATES = Rev("p001", "unlimited editors", """
    posts = sa.table("posts", sa.column("id"), sa.column("user_id"), sa.column("editor_id"))
    bind = op.get_bind()
    bind.execute(posts.update().where(posts.c.editor_id == 99).values(editor_id=None))
    bind.execute(posts.update().where(posts.c.user_id == 2).values(editor_id=-1))
    for i in (7, 8):
        bind.execute(posts.update().where(posts.c.id == i).values(editor_id=i))
""", "pass")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_an_update_with_numeric_parameters_is_counted_on_production(dialect, server_urls, production, tmp_path) -> None:
    """Found on Mailu: fc099bd15cbe's `UPDATE domain SET max_users=%(max_users)s WHERE domain.max_users =
    %(max_users_1)s` could not be counted on production (placeholders), so it was `unproved` by the whole table's
    rows even where no row has max_users 0. With its numbers written in it is counted like a plain SQL UPDATE; a
    statement sent in a loop with different values keeps its placeholders (one proof, not one per row)."""
    project, url = _production(tmp_path, production, dialect, CLEAN_USERS, CLEAN_POSTS,
                               good_chain() + [EXTRA, NUMERIC_UPDATES], EXTRA_MODELS)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    [step] = report["steps"]
    texts = [p["text"] for p in step["proofs"]]
    assert [(p["kind"], p["decides"], p["count"]) for p in step["proofs"]] == [
        ("data", "passes", 0), ("data", "unproved", 2), ("data", "unproved", 9)]
    assert texts[0].startswith("writes rows in a data migration (UPDATE posts SET editor_id=NULL WHERE "
                               "posts.editor_id = 99)") and texts[0].endswith("it touches no row of posts in production")
    assert "(UPDATE posts SET editor_id=(-1) WHERE posts.user_id = 2)" in texts[1]
    assert "it touches 2 of production's 9 row(s) of posts" in texts[1]
    assert "%(" in texts[2] and "production holds 9 row(s) of posts" in texts[2]


CHAINED_UPDATES = Rev("p001", "move editors twice", """
    op.execute("UPDATE posts SET editor_id = 99 WHERE editor_id = 2")
    op.execute("UPDATE posts SET editor_id = 5 WHERE editor_id = 99")
""", "pass")


def test_an_update_whose_where_reads_a_column_an_earlier_update_set_is_not_counted(server_urls, production,
                                                                                   tmp_path) -> None:
    """Production holds no editor 99, but the first UPDATE makes one: counting `editor_id = 99` there said the second
    UPDATE "touches no row" (it touches the row the first one moved)."""
    project, url = _production(tmp_path, production, "postgresql", CLEAN_USERS, CLEAN_POSTS,
                               good_chain() + [EXTRA, CHAINED_UPDATES], EXTRA_MODELS)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert [(p["decides"], p["count"]) for p in step["proofs"]] == [("unproved", 1), ("unproved", 9)]
    assert step["proofs"][1]["text"].endswith("production holds 9 row(s) of posts and the rehearsal held 0 of them: "
                                              "pass --sample-rows 9 (or more) to rehearse it on every row")


#: a number into a VARCHAR too short for some of them (PostgreSQL through USING, MariaDB by the number's text)
NARROW_EDITOR = Rev("p001", "editor as one character", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.alter_column("editor_id", type_=sa.String(length=1), existing_type=sa.Integer(),
                              existing_nullable=True, postgresql_using="editor_id::text")
""", "pass")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_number_into_a_shorter_varchar_is_counted_as_text(dialect, server_urls, production, tmp_path) -> None:
    """posts.editor_id 99 on two rows into VARCHAR(1): they do not fit. Before, a number into a VARCHAR had no
    proof (`none`: safe) on MariaDB, and PostgreSQL's USING was only tried, not measured against the length."""
    models = EXTRA_MODELS.replace("    editor_id = db.Column(sa.Integer, nullable=True)",
                                  "    editor_id = db.Column(sa.String(1), nullable=True)")
    project, url = _production(tmp_path, production, dialect, DIRTY_USERS, DIRTY_POSTS,
                               good_chain() + [EXTRA, NARROW_EDITOR], models)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _proofs(report) == {"p001": [("length", "fails", 2)]}
