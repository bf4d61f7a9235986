"""``migration-harness compat``: the previous release (a git tag of the app, checked out apart) against the schema
each new revision leaves, on real databases; each revision classified expand / contract / breaking."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALL, run_cli, scratch_leftovers
from projects import GOOD_MODELS, POSTS, USERS, Rev, make_project

LEGACY = Rev("a003", "add posts legacy", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("legacy", sa.String(length=50), nullable=True))
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("legacy")
""")

#: the release tagged v1: what runs in production during the deploy
V1_MODELS = """
import os
with open(os.environ["IMPORT_LOG"], "a") as log:
    log.write(f"{os.getcwd()}|{__file__}\\n")

""" + GOOD_MODELS + """    legacy = db.Column(sa.String(50))
    author = db.relationship("User")
"""

NICKNAME = Rev("b001", "add users nickname", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("nickname", sa.String(length=80), nullable=True))
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("nickname")
""")
SCORE = Rev("b002", "add users score with a server default", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("score", sa.Integer(), server_default="0", nullable=False))
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("score")
""")
DROP_LEGACY = Rev("b003", "drop posts legacy", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("legacy")
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("legacy", sa.String(length=50), nullable=True))
""")
RENAME_TITLE = Rev("b004", "rename posts title to headline", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_index("ix_posts_title")
        batch_op.alter_column("title", new_column_name="headline", existing_type=sa.String(length=200),
                              existing_nullable=False)
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_index("ix_posts_headline", ["headline"], unique=False)
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_index("ix_posts_headline")
        batch_op.alter_column("headline", new_column_name="title", existing_type=sa.String(length=200),
                              existing_nullable=False)
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_index("ix_posts_title", ["title"], unique=False)
""")
SLUG = Rev("b005", "add posts slug not null without default", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("slug", sa.String(length=200), nullable=True))
    op.execute("UPDATE posts SET slug = 'post-' || id" if op.get_bind().dialect.name != "mysql"
               else "UPDATE posts SET slug = CONCAT('post-', id)")
    with op.batch_alter_table("posts") as batch_op:
        batch_op.alter_column("slug", existing_type=sa.String(length=200), nullable=False)
""", """
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("slug")
""")

NEW_USER = '''
class User(db.Model):
    __tablename__ = "users"
    id = db.Column(sa.Integer, primary_key=True)
    name = db.Column(sa.String(80), nullable=False)
    nickname = db.Column(sa.String(80))
    score = db.Column(sa.Integer, nullable=False, server_default="0")
'''
#: the working tree: the release being deployed
NEW_MODELS = NEW_USER + '''

class Post(db.Model):
    __tablename__ = "posts"
    id = db.Column(sa.Integer, primary_key=True)
    user_id = db.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=False)
    headline = db.Column(sa.String(200), nullable=False, index=True)
    slug = db.Column(sa.String(200), nullable=False)
    author = db.relationship("User")
'''
#: a release that only expands, then drops a column it no longer maps
SPLIT_MODELS = NEW_USER + '''

class Post(db.Model):
    __tablename__ = "posts"
    id = db.Column(sa.Integer, primary_key=True)
    user_id = db.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=False)
    title = db.Column(sa.String(200), nullable=False, index=True)
    author = db.relationship("User")
'''


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True,
                   capture_output=True)


def release_history(root: Path, new_revisions: list[Rev], new_models: str, template: Path | None = None) -> Path:
    """A git repository whose tag v1 is the previous release (users, posts with a legacy column), and whose
    working tree (uncommitted, as on a developer's machine) adds ``new_revisions`` and ``new_models``;
    ``template``: the Flask-Migrate template of the app's stack (make_project's)."""
    make_project(root, [USERS, POSTS, LEGACY], V1_MODELS, template=template)
    (root / ".gitignore").write_text("__pycache__/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "v1")
    _git(root, "tag", "v1")
    make_project(root, [USERS, POSTS, LEGACY, *new_revisions],
                 'import os\nwith open(os.environ["IMPORT_LOG"], "a") as log:\n'
                 '    log.write(f"{os.getcwd()}|{__file__}\\n")\n' + new_models, template=template)
    return root


def compat(project: Path, tmp_path: Path, server_urls: dict[str, str], *args: str,
           db: tuple[str, ...] = ALL, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "compat.json"
    full_env = {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"],
                "IMPORT_LOG": str(tmp_path / "imports.log"), **(env or {})}
    proc = run_cli(["compat", "--app", "app:create_app", "--db", ",".join(db), "--json", str(report), *args],
                   project, full_env)
    for dialect in ("postgresql", "mysql"):  # every scratch database the run made is gone again
        assert not [n for n in scratch_leftovers(server_urls[dialect]) if n.startswith(f"mharness_{proc.run_id}_")]
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=project, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1, worktrees  # the previous release's checkout is gone
    return proc, json.loads(report.read_text()) if report.exists() else {}


def _classes(database: dict) -> dict[str, str]:
    return {r["revision"]: r["class"] for r in database["revisions"]}


SMOKE = (f"{sys.executable} -c \"import os, sqlalchemy as sa; e = sa.create_engine(os.environ['DATABASE_URL']); "
         "c = e.connect(); c.execute(sa.text('SELECT title FROM posts')); print('smoke: posts.title read')\"")


def test_each_revision_classified_on_every_database(tmp_path: Path, server_urls: dict[str, str]) -> None:
    """A nullable column and a NOT NULL one with a server default are expand; dropping a column the new models
    no longer map is contract; a rename and a NOT NULL column the old code does not fill are breaking, each with
    the operation, the attribute and the database's error; the smoke command's failure comes with its output."""
    project = release_history(tmp_path / "blog", [NICKNAME, SCORE, DROP_LEGACY, RENAME_TITLE, SLUG], NEW_MODELS)
    proc, report = compat(project, tmp_path, server_urls, "--previous", "v1", "--previous-tests", SMOKE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["command"] == "compat" and report["schema_version"] == 1 and report["exit_code"] == 1
    assert report["previous"]["ref"] == "v1" and report["previous"]["head"] == "a003"
    assert [r["revision"] for r in report["revisions"]] == ["b001", "b002", "b003", "b004", "b005"]
    for database in report["databases"]:
        dialect = database["dialect"]
        assert database["status"] == "failed", (dialect, database)
        assert _classes(database) == {"b001": "expand", "b002": "expand", "b003": "contract", "b004": "breaking",
                                      "b005": "breaking"}, (dialect, database)
        by_revision = {r["revision"]: r["failures"] for r in database["revisions"]}
        assert not [f for f in by_revision["b001"] + by_revision["b002"] if f["release"] == "previous"]
        contract = by_revision["b003"]
        assert {(f["operation"], f["attribute"]) for f in contract if f["release"] == "previous"} >= {
            ("select", "legacy"), ("update", "legacy"), ("load", None)}
        assert not [f for f in contract if f["release"] == "new"]  # the new release does not map it
        rename = by_revision["b004"]
        select_title = next(f for f in rename if f["operation"] == "select" and f["attribute"] == "title")
        assert select_title["release"] == "previous" and select_title["model"] == "Post"
        assert "title" in select_title["error"]
        assert any(f["release"] == "new" and f["attribute"] == "headline" for f in rename)
        smoke = [f for f in rename if f["operation"] == "smoke"]
        assert smoke and "title" in smoke[0]["error"] and "exited with 1" in smoke[0]["error"], rename
        slug = by_revision["b005"]
        assert {(f["release"], f["operation"], f["attribute"]) for f in slug} >= {
            ("previous", "insert", "slug"), ("new", "select", "slug")}, slug
        assert database["problems"] and "b004 is breaking" in database["problems"][0]
        assert not database["baseline"], database["baseline"]  # both releases work on their own heads
    assert "breaking  b004" in proc.stdout and "release v1 selects Post.title" in proc.stdout
    assert "add the new column" in proc.stdout  # the usual split is suggested


def test_expand_then_contract_is_deployable_schema_first(tmp_path: Path, server_urls: dict[str, str]) -> None:
    """Expand revisions then one contract: exit 0 with the plan (contract after the old code is gone); the same
    deploy code-first fails on the revisions the new code needs; a contract before an expand cannot be ordered."""
    project = release_history(tmp_path / "blog", [NICKNAME, SCORE, DROP_LEGACY], SPLIT_MODELS)
    proc, report = compat(project, tmp_path, server_urls, "--previous", "v1", db=("sqlite", "postgresql"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for database in report["databases"]:
        assert database["status"] == "ok" and _classes(database) == {
            "b001": "expand", "b002": "expand", "b003": "contract"}, database
    assert "then b003 once the previous release is gone" in proc.stdout

    proc, report = compat(project, tmp_path, server_urls, "--previous", "v1", "--order", "code-first",
                          db=("sqlite",))
    assert proc.returncode == 1 and report["order"] == "code-first", proc.stdout
    assert "b001 is needed by the new release" in report["databases"][0]["problems"][0]

    reordered = tmp_path / "reordered"
    contract_first = [DROP_LEGACY, Rev("b001", NICKNAME.message, NICKNAME.upgrade, NICKNAME.downgrade)]
    release_history(reordered, contract_first, SPLIT_MODELS.replace(
        '    score = db.Column(sa.Integer, nullable=False, server_default="0")\n', ""))
    proc, report = compat(reordered, tmp_path, server_urls, "--previous", "v1", db=("sqlite",))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _classes(report["databases"][0]) == {"b003": "contract", "b001": "expand"}
    assert "b001 (expand) comes after b003 (contract)" in report["databases"][0]["problems"][0]


def test_previous_release_never_imports_the_working_tree(tmp_path: Path, server_urls: dict[str, str]) -> None:
    """Even with the working tree on PYTHONPATH (as an editable install puts it on sys.path), the previous
    release's workers import the previous release's models from its own checkout, and only the new release's
    workers import the working tree's."""
    models = V1_MODELS.split("\n\n\n", 1)[1].replace(
        "    name = db.Column(sa.String(80), nullable=False)\n",
        "    name = db.Column(sa.String(80), nullable=False)\n    nickname = db.Column(sa.String(80))\n")
    project = release_history(tmp_path / "blog", [NICKNAME], models)
    proc, report = compat(project, tmp_path, server_urls, "--previous", "v1", db=("sqlite",),
                          env={"PYTHONPATH": str(project)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _classes(report["databases"][0]) == {"b001": "expand"}
    lines = [line.split("|") for line in (tmp_path / "imports.log").read_text().splitlines()]
    working = str(project.resolve())
    old = [(cwd, path) for cwd, path in lines if not cwd.startswith(working)]
    new = [(cwd, path) for cwd, path in lines if cwd.startswith(working)]
    assert len(old) >= 2 and len(new) >= 1, lines  # prepare + one exercise; one step
    assert all(not str(Path(path).resolve()).startswith(working) for _, path in old), old
    assert all(str(Path(path).resolve()).startswith(working) for _, path in new), new


def test_bad_previous_ref_is_one_line(tmp_path: Path, server_urls: dict[str, str]) -> None:
    project = release_history(tmp_path / "blog", [NICKNAME], NEW_MODELS)
    proc, report = compat(project, tmp_path, server_urls, "--previous", "v9", db=("sqlite",))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"migration-harness: error: --previous v9: not a commit, tag or branch of {project.resolve()} "
        "(`git tag` lists the tags; fetch them first in a shallow CI checkout)"]
    assert report["exit_code"] == 2 and report["command"] == "compat"


@pytest.mark.parametrize("flag", ["--previous-path"])
def test_previous_path_and_previous_python(tmp_path: Path, server_urls: dict[str, str], flag: str) -> None:
    """A checkout given by path, run with an interpreter of its own (--previous-python)."""
    project = release_history(tmp_path / "blog", [NICKNAME, SCORE], SPLIT_MODELS.replace(
        "    author", "    legacy = db.Column(sa.String(50))\n    author"))
    checkout = tmp_path / "v1-checkout"
    subprocess.run(["git", "clone", "-q", "--branch", "v1", str(project), str(checkout)], check=True)
    proc, report = compat(project, tmp_path, server_urls, flag, str(checkout), "--previous-python", sys.executable,
                          db=("mysql",))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["previous"]["path"] == str(checkout.resolve())
    assert _classes(report["databases"][0]) == {"b001": "expand", "b002": "expand"}


#: a models module whose import (the app's load) on a SQLite file, the preflight's, takes 1.5 s and is logged
SLOW_ON_SQLITE = '''
import os as _os
import time as _time
if _os.environ.get("DATABASE_URL", "").startswith("sqlite"):
    with open(_os.environ["LOAD_LOG"], "a") as _log:
        _log.write("start\\n")
    _time.sleep(1.5)
    with open(_os.environ["LOAD_LOG"], "a") as _log:
        _log.write("done\\n")
'''


def test_both_releases_load_at_once(tmp_path: Path, server_urls: dict[str, str]) -> None:
    """The working tree's app and the previous release's are loaded side by side, each in a worker of its own,
    not one after the other; a bad working tree is still the error said (exit 2), even with the previous
    release loading fine."""
    models = V1_MODELS.split("\n\n\n", 1)[1].replace(
        "    name = db.Column(sa.String(80), nullable=False)\n",
        "    name = db.Column(sa.String(80), nullable=False)\n    nickname = db.Column(sa.String(80))\n")
    project = release_history(tmp_path / "blog", [NICKNAME], models)
    checkout = tmp_path / "v1-checkout"
    subprocess.run(["git", "clone", "-q", "--branch", "v1", str(project), str(checkout)], check=True)
    for models in (project / "models.py", checkout / "models.py"):
        models.write_text(models.read_text() + SLOW_ON_SQLITE)
    log = tmp_path / "loads.log"
    proc, report = compat(project, tmp_path, server_urls, "--previous-path", str(checkout), db=("postgresql",),
                          env={"LOAD_LOG": str(log)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _classes(report["databases"][0]) == {"b001": "expand"}
    assert log.read_text().split() == ["start", "start", "done", "done"]
    (project / "models.py").write_text((project / "models.py").read_text() + "\nraise RuntimeError('broken tree')\n")
    proc, report = compat(project, tmp_path, server_urls, "--previous-path", str(checkout), db=("postgresql",),
                          env={"LOAD_LOG": str(log)})
    assert proc.returncode == 2 and "broken tree" in proc.stderr, proc.stdout + proc.stderr
