"""[rehearse] `migration-harness rehearse --from URL` against real "production" databases.

Each test makes its own production database (``prodtest_<hex>``) on the session's servers, brings it to an older
revision with plain ``flask db upgrade <rev>``, adds rows (and sometimes a hand-made change), rehearses, and drops
it again. The throwaway server is the session's server given as ``HARNESS_*_URL`` (fast), except for one test per
dialect that takes the container path with ``--image``.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from conftest import APP_PYTHON, IMAGES, cli_env, run_cli, run_containers, scratch_leftovers
from projects import (GOOD_MODELS, OWN_ENGINE_ENV, SLOW_LOAD, TRICKY_MODELS, Rev, good_chain, make_project,
                      tricky_chain)

ADD_EMAIL = Rev("a003", "add users email", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=120), nullable=True))
    op.execute("UPDATE users SET email = name")
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email")
""")
UNIQUE_NAMES = Rev("a004", "unique user names", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_unique_constraint("uq_users_name", ["name"])
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_name", type_="unique")
""")
EMAIL_MODELS = GOOD_MODELS.replace('    name = db.Column(sa.String(80), nullable=False)\n',
                                   '    name = db.Column(sa.String(80), nullable=False)\n'
                                   '    email = db.Column(sa.String(120), nullable=True)\n')
UNIQUE_MODELS = EMAIL_MODELS.replace("db.Column(sa.String(80), nullable=False)",
                                     "db.Column(sa.String(80), nullable=False, unique=True)")
TRICKY_NOTE = Rev("b003", "note on things", """
    with op.batch_alter_table("things") as batch_op:
        batch_op.add_column(sa.Column("note", sa.String(length=40), nullable=True))
    op.execute("UPDATE things SET note = code")
""", """
    with op.batch_alter_table("things") as batch_op:
        batch_op.drop_column("note")
""")
TRICKY_NOTE_MODEL = TRICKY_MODELS.replace("    notes = db.Column(sa.Text, nullable=True)\n",
                                          "    notes = db.Column(sa.Text, nullable=True)\n"
                                          "    note = db.Column(sa.String(40), nullable=True)\n")
USERS = [{"id": i, "name": f"user{i % 4}"} for i in range(1, 9)]  # names repeat: uq_users_name cannot be made
POSTS = [{"id": i, "user_id": 1 + i % 8, "title": f"post {i}"} for i in range(1, 13)]


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def _execute(url: str, *statements: str) -> None:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def flask_upgrade(project: Path, url: str, revision: str) -> None:
    """``flask db upgrade <revision>`` on ``url``, as a release manager would have run it (with the app's
    interpreter)."""
    env = cli_env({"DATABASE_URL": url, "FLASK_APP": "app:create_app"})
    env["PYTHONPATH"] = str(project)
    proc = subprocess.run([APP_PYTHON or sys.executable, "-m", "flask", "db", "upgrade", revision], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def add_rows(url: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            md = sa.MetaData()
            md.reflect(bind=conn, only=["users", "posts"])
            conn.execute(md.tables["users"].insert(), USERS)
            conn.execute(md.tables["posts"].insert(), POSTS)
    finally:
        engine.dispose()


@pytest.fixture
def production(server_urls: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``make(dialect)``: the URL of a new, empty database ``prodtest_<hex>`` (a file for SQLite); every one is
    dropped at the end of the test."""
    made: list[tuple[str, str]] = []

    def make(dialect: str) -> str:
        name = f"prodtest_{secrets.token_hex(4)}"
        if dialect == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        admin = server_urls[dialect]
        _execute(admin, f"CREATE DATABASE {name}")
        made.append((admin, name))
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    yield make
    for admin, name in made:
        force = " WITH (FORCE)" if admin.startswith("postgresql") else ""
        _execute(admin, f"DROP DATABASE IF EXISTS {name}{force}")


def rehearse(project: Path, source: str, server_urls: dict[str, str], *args: str, servers: bool = True,
             env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict[str, Any] | None]:
    """``migration-harness rehearse --from SOURCE ARGS`` with a JSON report; checks nothing was left behind."""
    report = project / f"rehearse-{secrets.token_hex(3)}.json"
    full_env = dict(env or {})
    if servers:
        full_env.update({"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]})
    else:  # the container path: no server URL anywhere
        for name in ("HARNESS_POSTGRESQL_URL", "HARNESS_MYSQL_URL"):
            os.environ.pop(name, None)
    proc = run_cli(["rehearse", "--app", "app:create_app", "--from", source, "--json", str(report), *args],
                   project, full_env, timeout=300)
    for dialect in ("postgresql", "mysql"):
        left = [n for n in scratch_leftovers(server_urls[dialect]) if n.startswith(f"mharness_{proc.run_id}_")]
        assert not left, f"scratch databases left on {dialect}: {left}"
    assert not run_containers(proc.run_id), "a container was left behind"
    return proc, json.loads(report.read_text()) if report.exists() else None


def prepared(tmp_path: Path, production: Callable[[str], str], dialect: str, chain: list[Rev], models: str,
             at: str = "a002") -> tuple[Path, str]:
    project = make_project(tmp_path / f"p-{dialect}", chain, models)
    url = production(dialect)
    flask_upgrade(project, url, at)
    add_rows(url)
    return project, url


def catalogue_checksum(url: str) -> str:
    """md5 of what the catalogue says of the database's tables and columns, plus each table's rows."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                schema = "table_catalog = current_database() AND table_schema = 'public'"
            else:
                schema = "table_schema = DATABASE()"
            parts = [repr(conn.execute(sa.text(f"SELECT * FROM information_schema.{view} WHERE {schema} "
                                               "ORDER BY table_name" + (", ordinal_position" if view == "columns" else "")
                                               )).all()) for view in ("tables", "columns")]
            for table in ("users", "posts", "alembic_version"):
                parts.append(repr(conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).all()))
            if conn.dialect.name == "postgresql":
                parts.append(repr(conn.execute(sa.text(
                    "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY relname")).all()))
    finally:
        engine.dispose()
    return hashlib.md5("\n".join(parts).encode()).hexdigest()


def sqlite_file_state(url: str) -> Any:
    """A SQLite file's bytes, modification time, and the files next to it (a journal would show a write)."""
    if not url.startswith("sqlite"):
        return None
    path = Path(make_url(url).database)
    return (path.read_bytes(), path.stat().st_mtime_ns,
            sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name)))


# -- (a) clean: safe, with each pending step's duration and rows ---------------------------------------------------
@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_clean_production_is_safe_and_lists_the_pending_steps(dialect, server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    before = sqlite_file_state(url)
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "50")
    assert sqlite_file_state(url) == before  # SQLite "production" is opened read-only: not a byte changes
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["verdict"] == "safe" and report["schema_version"] == 1 and report["reasons"] == []
    assert report["source"]["revisions"] == ["a002"] and report["pending"] == ["a003"]
    assert report["drift"] == {"status": "passed", "error": None, "findings": [], "ignored": []}
    [step] = report["steps"]
    assert step["revision"] == "a003" and step["status"] == "passed" and step["duration_s"] > 0
    assert step["rows"] == len(USERS)  # the UPDATE touched every copied user
    assert report["source"]["copied_rows"] == {"users": len(USERS), "posts": len(POSTS)}
    assert report["schema_matches_models"]["status"] == "passed"
    assert "verdict: SAFE" in proc.stdout and "a003 (add users email)" in proc.stdout


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_the_throwaway_server_is_a_container_of_the_given_image(dialect, server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    proc, report = rehearse(project, url, server_urls, "--image", IMAGES[dialect], "--sample-rows", "3",
                            servers=False)
    # the step passed on the copy, but its UPDATE of users ran on 3 of production's 8 users: not proved
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert report["verdict"] == "unproved" and report["reasons"] == []
    assert "it touches 8 of production's 8 row(s) of users and the rehearsal held 3 of them" in report["unproved"][0]
    assert report["throwaway"]["kind"] == "container" and report["throwaway"]["image"] == IMAGES[dialect]
    assert report["steps"][0]["rows"] == 3
    assert report["source"]["copied_rows"]["users"] == 3
    # posts only with their user copied: user 1..3 have posts 8, 1, 9, 2, 10 (user_id = 1 + i % 8)
    assert report["source"]["copied_rows"]["posts"] == 3


def test_an_image_that_cannot_be_pulled_is_one_line_exit_3(server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    proc, _ = rehearse(project, url, server_urls, "--image", "migration-harness/no-such-image:1", servers=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    # testcontainers 4.0 logs "Pulling image ..." by itself; the harness says one line
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("migration-harness")]
    assert line.startswith("migration-harness: error: postgresql: image 'migration-harness/no-such-image:1' is not "
                           "available locally and could not be pulled")


# -- (b) drift ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect, change, expected", [
    ("postgresql", "ALTER TABLE users ADD COLUMN nickname VARCHAR(20)",
     "column users.nickname VARCHAR(20): in production but not in what the migrations build"),
    ("postgresql", "ALTER TABLE posts ALTER COLUMN title TYPE VARCHAR(100)",
     "column posts.title: type differs: production VARCHAR(100), migrations VARCHAR(200)"),
    ("mysql", "DROP INDEX ix_posts_title ON posts",
     "index ix_posts_title on posts (title): built by the migrations but not in production"),
])
def test_a_hand_made_change_is_drift_and_unsafe(dialect, change, expected, server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    _execute(url, change)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["verdict"] == "unsafe" and report["drift"]["status"] == "failed"
    assert [f["text"] for f in report["drift"]["findings"]] == [expected]
    assert any("drift" in r for r in report["reasons"])
    assert expected in proc.stdout


# -- (c) a pending migration that fails only on the rows ------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_a_step_that_fails_on_the_sampled_rows_is_unsafe(dialect, server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL, UNIQUE_NAMES], UNIQUE_MODELS)
    page = tmp_path / f"rehearse-{dialect}.html"
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "100", "--html", str(page))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [s["status"] for s in report["steps"]] == ["passed", "failed"]
    failed = report["steps"][1]
    assert failed["revision"] == "a004" and failed["error"]
    assert any(r.startswith("pending migration a004 (unique user names) failed") for r in report["reasons"])
    assert report["schema_matches_models"]["status"] == "skipped"
    if dialect == "postgresql":  # the HTML report, as Chromium renders it
        from test_reports import _chromium, _dom

        dom = _dom(_chromium(page, tmp_path, "--dump-dom"))
        verdict = next(e for e in dom.iter("h1"))
        assert verdict.get("data-verdict") == "unsafe" and "UNSAFE" in "".join(verdict.itertext())
        steps = {e.get("data-revision"): e.get("data-status") for e in dom.iter("tr") if e.get("class") == "step"}
        assert steps == {"a003": "passed", "a004": "failed"}
        assert any("uq_users_name" in "".join(e.itertext()) for e in dom.iter("pre"))  # the database's error


def test_without_rows_the_proofs_still_find_it(server_urls, production, tmp_path) -> None:
    """The rows are what makes a004 fail: schema only, both steps pass on the copy, and the proofs asked of
    production find the duplicate names (and that a003's UPDATE ran on none of the 8 users)."""
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [ADD_EMAIL, UNIQUE_NAMES],
                            UNIQUE_MODELS)
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [s["status"] for s in report["steps"]] == ["passed", "passed"]
    assert [s["proof"] for s in report["steps"]] == ["unproved", "fails"]
    [unique] = report["steps"][1]["proofs"]
    assert (unique["kind"], unique["count"]) == ("unique", 4)  # user0 .. user3, twice each
    assert any("asked of production" in n for n in report["notes"])


# -- (d) a SELECT-only account: the rehearsal works and production is unchanged ---------------------------------------
@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_select_only_account_is_enough_and_changes_nothing(dialect, server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    role, password = f"ro_{secrets.token_hex(3)}", f"pw-{secrets.token_hex(6)}"
    database = make_url(url).database
    if dialect == "postgresql":
        _execute(server_urls[dialect], f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        _execute(url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC", f"GRANT CONNECT ON DATABASE {database} TO {role}",
                 f"GRANT USAGE ON SCHEMA public TO {role}", f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    else:
        _execute(url, f"CREATE USER '{role}'@'%' IDENTIFIED BY '{password}'",
                 f"GRANT SELECT ON {database}.* TO '{role}'@'%'")
    readonly = make_url(url).set(username=role, password=password).render_as_string(hide_password=False)
    try:
        before = catalogue_checksum(url)
        proc, report = rehearse(project, readonly, server_urls, "--sample-rows", "5", "-v", "--markdown",
                                str(tmp_path / "r.md"))
        # a003's UPDATE touches production's 8 users and the rehearsal held 5: not proved (the proofs' counts
        # were asked with the SELECT-only account)
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert report["verdict"] == "unproved" and report["steps"][0]["rows"] == 5
        assert report["steps"][0]["proofs"][0]["count"] == len(USERS)
        assert catalogue_checksum(url) == before
        texts = proc.stdout + proc.stderr + json.dumps(report) + (tmp_path / "r.md").read_text()
        assert password not in texts and role in texts  # the URL is shown, its password never
    finally:
        if dialect == "postgresql":
            _execute(url, f"DROP OWNED BY {role}")
            _execute(server_urls[dialect], f"DROP ROLE {role}")
        else:
            _execute(url, f"DROP USER '{role}'@'%'")


@pytest.mark.parametrize("dialect, refusal", [("postgresql", "read-only transaction"),
                                             ("mysql", "READ ONLY transaction"), ("sqlite", "readonly database")])
def test_a_write_is_refused_by_production_itself(dialect, refusal, server_urls, production, tmp_path) -> None:
    """The read-only session is the database's own guarantee, not only the harness's good behaviour."""
    from harness.backends import get_backend

    _, url = prepared(tmp_path, production, dialect, good_chain(), GOOD_MODELS)
    engine = get_backend(dialect).read_only_engine(make_url(url))
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=refusal):
            conn.execute(sa.text("UPDATE users SET name = 'x'"))
    finally:
        engine.dispose()


@pytest.mark.fast
@pytest.mark.parametrize("statement", ["UPDATE users SET name = 'x'", "CREATE TABLE t (id int)",
                                       "PRAGMA journal_mode = WAL", "DROP DATABASE prod", "  insert into t values (1)"])
def test_the_harness_refuses_to_send_a_write(statement) -> None:
    from harness.rehearse.source import WriteRefused, _guard

    with pytest.raises(WriteRefused):
        _guard(None, None, statement, None, None, False)
    _guard(None, None, "SELECT 1", None, None, False)
    _guard(None, None, "PRAGMA main.table_info(\"users\")", None, None, False)


# -- (e) what production is not ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["mysql"])
def test_an_unknown_revision_in_production_is_unsafe(dialect, server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    _execute(url, "UPDATE alembic_version SET version_num = 'zz99'")
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [f["text"] for f in report["drift"]["findings"]] == [
        "revision zz99 in production is not in the migrations history"]
    assert report["steps"] == [] and report["throwaway"]["kind"] is None  # nothing to rehearse: no server


def test_a_database_not_under_alembic_is_exit_2_in_one_line(server_urls, production, tmp_path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    url = production("postgresql")
    _execute(url, "CREATE TABLE users (id integer primary key)")
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("migration-harness: error: ") and "not under alembic" in line
    assert report["verdict"] == "error" and report["exit_code"] == 2 and "not under alembic" in report["error"]


@pytest.mark.parametrize("source, code, needle", [
    ("not a url", 2, "cannot parse"),
    ("oracle://scott:s3cr3t-pw@db/orcl", 2, "not supported"),
    ("postgresql://scott:s3cr3t-pw@127.0.0.1:1/prod", 3, "cannot connect"),
    ("sqlite:////nonexistent/prod.db", 2, "no SQLite database file"),
])
def test_a_bad_url_is_one_line_without_the_password(source, code, needle, server_urls, tmp_path) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc, report = rehearse(project, source, server_urls)
    assert proc.returncode == code, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("migration-harness: error: ") and needle in line
    assert report["exit_code"] == code
    assert "s3cr3t-pw" not in proc.stdout + proc.stderr + json.dumps(report)


def test_a_bad_url_stops_the_preflight_already_loading_and_leaves_nothing(server_urls, tmp_path) -> None:
    """rehearse starts its preflight before it imports the rest of itself and reads --from: a URL it cannot parse
    is one line and exit 2, and the preflight's worker and files are gone."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "app.py").write_text((project / "app.py").read_text() + SLOW_LOAD)
    temp, loads = tmp_path / "tmp", tmp_path / "loads.txt"
    temp.mkdir()
    proc, report = rehearse(project, "not a url", server_urls,
                            env={"TMPDIR": str(temp), "HARNESS_TEST_LOADS": str(loads)})
    assert proc.returncode == 2 and report is not None and report["exit_code"] == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "cannot parse" in proc.stderr, proc.stderr
    assert (loads.read_text().split() if loads.exists() else []) in ([], ["load"])
    assert [p.name for p in temp.iterdir()] == ["mharness_runs"] and not list((temp / "mharness_runs").iterdir())


# -- the copy is faithful: every type and constraint that reflects differently somewhere ------------------------------
THING_ROWS = [{"id": i, "code": f"c{i}", "kind": "k", "label": f"l{i}", "price": i, "status": "draft"}
              for i in range(1, 10)]
#: 2's parent comes after it, 4's parent (9) is beyond a sample of 5, 5 is 4's child
THING_PARENTS = {2: 3, 3: 1, 4: 9, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8}


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_tricky_schema_is_recreated_without_drift_and_self_references_stay_consistent(
        dialect, server_urls, production, tmp_path) -> None:
    project = make_project(tmp_path / "p", tricky_chain() + [TRICKY_NOTE], TRICKY_NOTE_MODEL)
    url = production(dialect)
    flask_upgrade(project, url, "b002")
    engine = _engine(url)
    with engine.begin() as conn:
        things = sa.Table("things", sa.MetaData(), autoload_with=conn)
        conn.execute(things.insert(), THING_ROWS)
        for child, parent in THING_PARENTS.items():
            conn.execute(things.update().where(things.c.id == child).values(parent_id=parent))
    engine.dispose()
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "5")
    assert proc.returncode == 5, proc.stdout + proc.stderr  # b003's UPDATE ran on 5 rows of things, not on all
    assert report["verdict"] == "unproved" and report["reasons"] == []
    assert report["drift"]["findings"] == [] and report["schema_matches_models"]["status"] == "passed"
    # rows 1..5 are read; 4's parent (9) is not among them, so 4 goes, and 5 (child of 4) with it; 3 is
    # inserted before 2, its child
    assert report["source"]["copied_rows"] == {"things": 3}
    assert report["steps"][0]["rows"] == 3


@pytest.mark.fast
@pytest.mark.parametrize("dialect, info, version, image", [
    ("postgresql", (15, 4), "PostgreSQL 15.4", "postgres:15"),
    ("postgresql", (9, 6, 24), "PostgreSQL 9.6.24", "postgres:9.6"),
    ("mysql", (8, 0, 36), "MySQL 8.0.36", "mysql:8.0"),
    ("mysql", (10, 11, 6), "MariaDB 10.11.6", "mariadb:10.11"),
    ("sqlite", (), "SQLite 3.40.1", None),
])
def test_the_image_follows_the_production_server_version(dialect, info, version, image) -> None:
    from harness.backends import get_backend

    assert get_backend(dialect).image_for_version(info, version) == image


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_the_throwaway_image_is_the_option_then_the_environment_then_production_version(
        dialect, server_urls, production, tmp_path) -> None:
    """As for run: --image, then HARNESS_POSTGRESQL_IMAGE, then production's major version (postgres:15, which
    this machine cannot pull: the one-line error names it)."""
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    variable = f"HARNESS_{dialect.upper()}_IMAGE"
    proc, report = rehearse(project, url, server_urls, servers=False, env={variable: IMAGES[dialect]})
    assert report["throwaway"]["image"] == IMAGES[dialect], proc.stdout + proc.stderr
    proc, report = rehearse(project, url, server_urls, "--image", IMAGES[dialect], servers=False,
                            env={variable: "migration-harness/not-this-one:1"})
    assert report["throwaway"]["image"] == IMAGES[dialect], proc.stdout + proc.stderr
    if subprocess.run(["docker", "image", "inspect", "postgres:15"], capture_output=True).returncode != 0:
        proc, report = rehearse(project, url, server_urls, servers=False, env={variable: ""})
        assert proc.returncode == 3 and "image 'postgres:15'" in proc.stderr, proc.stdout + proc.stderr


def test_a_relative_sqlite_file_is_found_where_flask_sqlalchemy_puts_it(server_urls, production, tmp_path) -> None:
    """`--from sqlite:///prod.db` means what the app's own URI would: Flask-SQLAlchemy 3 resolves it in the
    app's instance folder (2.x: the app's root, which is where the harness looks there)."""
    import flask_sqlalchemy  # noqa: F401

    from conftest import release

    project = make_project(tmp_path / "p", good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    folder = project / "instance" if release("Flask-SQLAlchemy") >= (3, 0) else project
    folder.mkdir(exist_ok=True)
    flask_upgrade(project, f"sqlite:///{folder / 'prod.db'}", "a002")
    proc, report = rehearse(project, "sqlite:///prod.db", server_urls)
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr
    assert report["source"]["url"].endswith(str(folder / "prod.db")) and report["pending"] == ["a003"]
    proc, _ = rehearse(project, "sqlite:///nothing-here.db", server_urls)
    assert proc.returncode == 2
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("migration-harness")]
    assert f"no SQLite database file 'nothing-here.db' in {folder} (where the app's Flask-SQLAlchemy" in line, line


# -- several heads, a hung step, an interruption ---------------------------------------------------------------------
def _table_rev(revision: str, table: str, down: str | tuple[str, ...]) -> Rev:
    return Rev(revision, f"create {table}", f"""
    op.create_table("{table}", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_{table}")))
""", f'op.drop_table("{table}")', down_revision=down)


MERGE = Rev("a005", "merge tags and notes", "pass", "pass", down_revision=("a003", "a004"))
HEADS_MODELS = GOOD_MODELS + "".join(
    f'\n\nclass {name.title()}(db.Model):\n    __tablename__ = "{name}"\n    id = db.Column(sa.Integer, primary_key=True)\n'
    for name in ("tags", "notes"))


def test_production_at_two_heads_is_rehearsed_from_both(server_urls, production, tmp_path) -> None:
    chain = good_chain() + [_table_rev("a003", "tags", "a002"), _table_rev("a004", "notes", "a002"), MERGE]
    project = make_project(tmp_path / "p", chain, HEADS_MODELS)
    url = production("postgresql")
    flask_upgrade(project, url, "a003")
    flask_upgrade(project, url, "a004")
    proc, report = rehearse(project, url, server_urls)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["source"]["revisions"] == ["a003", "a004"] and report["pending"] == ["a005"]
    assert report["drift"]["status"] == "passed"
    assert [s["status"] for s in report["steps"]] == ["passed"]


SLOW = Rev("a003", "slow backfill", 'op.execute("SELECT pg_sleep(60)")', "pass")


def test_a_step_that_outlives_the_step_timeout_is_unsafe(server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [SLOW], GOOD_MODELS)
    # 8 s, not less: the limit also bounds loading the app, which took over 3 s on a machine at load 12
    proc, report = rehearse(project, url, server_urls, "--step-timeout", "8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [step] = report["steps"]
    assert step["revision"] == "a003" and step["status"] == "failed" and "did not finish within 8s" in step["error"]


def test_an_interrupted_rehearsal_leaves_nothing_behind(server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [SLOW], GOOD_MODELS)
    env = cli_env({"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]})
    proc = subprocess.Popen([sys.executable, "-m", "harness", "rehearse", "--app", "app:create_app", "--from", url,
                             "-v"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = env["HARNESS_RUN_ID"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the rehearsal's scratch databases exist and the slow step runs
        if len([n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{run_id}_")]) == 2:
            break
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not [n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{run_id}_")]


def test_a_schema_the_throwaway_server_cannot_recreate_is_not_safe(server_urls, production, tmp_path) -> None:
    """An extension type production has (citext) and the scratch database does not: nothing is verified, and
    the verdict says so instead of passing or crashing."""
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    _execute(url, "CREATE EXTENSION IF NOT EXISTS citext", "ALTER TABLE users ADD COLUMN handle citext")
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert any(r.startswith("production's schema could not be recreated") for r in report["reasons"]), report


REQUIRED_BIO = Rev("a004", "required user bio", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("bio", sa.String(length=200), nullable=False))
""", """
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("bio")
""")
BIO_MODELS = EMAIL_MODELS.replace("    email = db.Column(sa.String(120), nullable=True)\n",
                                  "    email = db.Column(sa.String(120), nullable=True)\n"
                                  "    bio = db.Column(sa.String(200), nullable=False)\n")


@pytest.mark.parametrize("dialect, verdict", [("postgresql", "unsafe"), ("mysql", "safe")])
def test_a_not_null_column_without_default_fails_where_the_database_refuses(dialect, verdict, server_urls,
                                                                            production, tmp_path) -> None:
    """PostgreSQL refuses NOT NULL without a default on a table with rows; MariaDB fills '' (FIELD_NOTES): the
    rehearsal says what production would do, on each."""
    project, url = prepared(tmp_path, production, dialect, good_chain() + [ADD_EMAIL, REQUIRED_BIO], BIO_MODELS)
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "100")
    assert report["verdict"] == verdict, proc.stdout + proc.stderr
    if verdict == "unsafe":
        assert report["steps"][1]["revision"] == "a004" and "NotNullViolation" in report["steps"][1]["error"]
    else:
        assert [s["status"] for s in report["steps"]] == ["passed", "passed"]


# -- found on real apps ----------------------------------------------------------------------------------------------
# CTFd: users.team_id -> teams and teams.captain_id -> users. No table order lets the rows in one table at a time.
CYCLE_CHAIN = [
    Rev("c001", "create users", """
    op.create_table("users", sa.Column("id", sa.Integer(), nullable=False), sa.Column("name", sa.String(40)),
                    sa.Column("team_id", sa.Integer(), nullable=True), sa.PrimaryKeyConstraint("id", name="pk_users"))
""", 'op.drop_table("users")'),
    Rev("c002", "create teams", """
    op.create_table("teams", sa.Column("id", sa.Integer(), nullable=False), sa.Column("name", sa.String(40)),
                    sa.Column("captain_id", sa.Integer(), nullable=True),
                    sa.ForeignKeyConstraint(["captain_id"], ["users.id"], name="fk_teams_captain_id_users"),
                    sa.PrimaryKeyConstraint("id", name="pk_teams"))
    op.create_foreign_key("fk_users_team_id_teams", "users", "teams", ["team_id"], ["id"])
""", """
    op.drop_constraint("fk_users_team_id_teams", "users", type_="foreignkey")
    op.drop_table("teams")
"""),
    Rev("c003", "add users email", """
    op.add_column("users", sa.Column("email", sa.String(length=120), nullable=True))
    op.execute("UPDATE users SET email = name")
""", 'op.drop_column("users", "email")'),
]
CYCLE_MODELS = """
class User(db.Model):
    __tablename__ = "users"
    id = db.Column(sa.Integer, primary_key=True)
    name = db.Column(sa.String(40))
    email = db.Column(sa.String(120))
    team_id = db.Column(sa.Integer, sa.ForeignKey("teams.id", name="fk_users_team_id_teams", use_alter=True))


class Team(db.Model):
    __tablename__ = "teams"
    id = db.Column(sa.Integer, primary_key=True)
    name = db.Column(sa.String(40))
    captain_id = db.Column(sa.Integer, sa.ForeignKey("users.id", name="fk_teams_captain_id_users"))
"""


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_tables_that_reference_each_other_are_copied_with_their_rows(dialect, server_urls, production,
                                                                     tmp_path) -> None:
    project = make_project(tmp_path / f"p-{dialect}", CYCLE_CHAIN, CYCLE_MODELS)
    url = production(dialect)
    flask_upgrade(project, url, "c002")
    _execute(url, "INSERT INTO users (id, name) VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')",
             "INSERT INTO teams (id, name, captain_id) VALUES (1, 'red', 2), (2, 'blue', 3)",
             "UPDATE users SET team_id = 1 WHERE id IN (1, 2)", "UPDATE users SET team_id = 2 WHERE id = 3")
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["verdict"] == "safe", report["reasons"]
    assert report["source"]["copied_rows"] == {"users": 3, "teams": 2}
    assert report["steps"][0]["rows"] == 3


def test_rows_are_counted_when_env_py_makes_its_own_engine(server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    (project / "migrations" / "env.py").write_text(OWN_ENGINE_ENV)  # engine_from_config, as older templates do
    proc, report = rehearse(project, url, server_urls, "--sample-rows", "50")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["steps"][0]["rows"] == len(USERS)


def test_ignored_tables_are_neither_drift_nor_a_model_difference(server_urls, production, tmp_path) -> None:
    project, url = prepared(tmp_path, production, "postgresql", good_chain() + [ADD_EMAIL], EMAIL_MODELS)
    _execute(url, "CREATE TABLE plugin_state (id INTEGER PRIMARY KEY, value TEXT)")  # a plugin's own migrations
    proc, report = rehearse(project, url, server_urls)
    assert report["verdict"] == "unsafe"
    assert [f["table"] for f in report["drift"]["findings"]] == ["plugin_state"]
    proc, report = rehearse(project, url, server_urls, "--ignore-table", "plugin_state", "--sample-rows", "100")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["drift"]["findings"] == [] and report["schema_matches_models"]["status"] == "passed"
    [ignored] = report["drift"]["ignored"]
    assert ignored["table"] == "plugin_state" and ignored["reason"] == "--ignore-table plugin_state"
    assert "ignored: table plugin_state" in proc.stdout
