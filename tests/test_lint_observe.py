"""[rollout] lint's observed findings: each pending step runs on a real scratch database whose tables hold rows,
and what the database did (PostgreSQL locks and rewrites, MySQL / MariaDB ALTER algorithms, SQLite table copies)
becomes a finding only where it really happens."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from harness.backends import get_backend
from harness.config import DatabaseSettings
from harness.run.process import run_worker
from projects import GOOD_MODELS, OWN_ENGINE_ENV, Rev, good_chain, make_project

SERVERS = ("postgresql", "mysql")
#: in .ci/run's quick subset on the floor stack too: the observers hook SQLAlchemy's events, whose signatures moved
pytestmark = pytest.mark.fast


def observe(tmp_path: Path, server_urls: dict[str, str], dialect: str, revisions: list[Rev],
            start: str | None = "a002") -> list[dict[str, Any]]:
    """The observe worker's events for ``revisions`` appended to the good chain, after ``start``."""
    root = make_project(tmp_path / f"p-{dialect}", good_chain() + revisions, GOOD_MODELS)
    run_id = secrets.token_hex(4)
    settings = DatabaseSettings(dialect, url=server_urls.get(dialect))
    with get_backend(dialect).server(settings, run_id) as server, server.scratch_database() as url:
        outcome = run_worker({"run_id": run_id, "app": "app:create_app", "migrations": None, "url": url,
                              "dialect": dialect, "mode": "observe", "checks": [], "ignore": [], "from": start,
                              "rows": 5}, cwd=str(root), step_timeout_s=120, secrets=[])
    assert outcome.finished, outcome.crash
    assert not outcome.of_kind("fatal"), outcome.of_kind("fatal")
    return outcome.events


def findings(events: list[dict[str, Any]], revision: str) -> dict[str, dict[str, Any]]:
    return {e["rule"]: e for e in events if e.get("event") == "finding" and e["revision"] == revision}


def observation(events: list[dict[str, Any]], revision: str) -> dict[str, Any]:
    return next(e for e in events if e.get("event") == "observation" and e["revision"] == revision)


ADD_FLAG = Rev("a003", "add flag", 'op.add_column("users", sa.Column("flag", sa.Integer(), nullable=False, '
               'server_default="0"))', 'op.drop_column("users", "flag")')
CONCURRENT_INDEX = Rev("a004", "index name concurrently", '''
with op.get_context().autocommit_block():
    op.create_index("ix_users_name", "users", ["name"], postgresql_concurrently=True)
''', 'op.drop_index("ix_users_name", table_name="users")')
PLAIN_INDEX = Rev("a005", "index title", 'op.create_index("ix_posts_title_user", "posts", ["title", "user_id"])',
                  'op.drop_index("ix_posts_title_user", table_name="posts")')
NEW_TABLE_WITH_INDEX = Rev("a006", "create tags", '''
op.create_table("tags", sa.Column("id", sa.Integer(), nullable=False), sa.Column("name", sa.String(20)),
                sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")))
op.create_index("ix_tags_name", "tags", ["name"])
''', 'op.drop_table("tags")')
WIDEN = Rev("a007", "widen name", 'op.alter_column("users", "name", type_=sa.String(200), existing_type=sa.String(80), '
            'existing_nullable=False)', 'op.alter_column("users", "name", type_=sa.String(80), '
            'existing_type=sa.String(200), existing_nullable=False)')
RETYPE = Rev("a008", "flag to bigint", 'op.alter_column("users", "flag", type_=sa.BigInteger(), '
             'existing_type=sa.Integer(), existing_nullable=False, existing_server_default="0")',
             'op.alter_column("users", "flag", type_=sa.Integer(), existing_type=sa.BigInteger(), '
             'existing_nullable=False, existing_server_default="0")')
NARROW = Rev("a009", "narrow name", 'op.alter_column("users", "name", type_=sa.String(60), '
             'existing_type=sa.String(200), existing_nullable=False)',
             'op.alter_column("users", "name", type_=sa.String(200), existing_type=sa.String(60), '
             'existing_nullable=False)')
CHAIN = [ADD_FLAG, CONCURRENT_INDEX, PLAIN_INDEX, NEW_TABLE_WITH_INDEX, WIDEN, RETYPE, NARROW]


def test_postgresql_locks_and_rewrites_are_findings_only_where_they_happen(tmp_path: Path, server_urls) -> None:
    events = observe(tmp_path, server_urls, "postgresql", CHAIN)
    # ADD COLUMN with a constant default: ACCESS EXCLUSIVE until commit, but no rewrite (PostgreSQL 11+)
    assert set(findings(events, "a003")) == {"access-exclusive-lock"}
    assert observation(events, "a003")["tables"]["users"]["lock"] == "ACCESS EXCLUSIVE"
    assert findings(events, "a003")["access-exclusive-lock"]["table"] == "users"
    # CREATE INDEX CONCURRENTLY in an autocommit block: nothing held by the step's transaction
    assert findings(events, "a004") == {}
    # a plain CREATE INDEX: SHARE, writers wait
    assert set(findings(events, "a005")) == {"blocks-writes"}
    assert "SHARE lock on posts" in findings(events, "a005")["blocks-writes"]["message"]
    # a table created by the step itself is nobody's yet
    assert findings(events, "a006") == {}
    # a longer VARCHAR: catalogue only (still ACCESS EXCLUSIVE); INTEGER -> BIGINT rewrites every row
    assert set(findings(events, "a007")) == {"access-exclusive-lock"}
    assert set(findings(events, "a008")) == {"table-rewrite"}  # the rewrite says the lock too: reported once
    assert findings(events, "a008")["table-rewrite"]["table"] == "users"
    assert observation(events, "a008")["tables"]["users"] == {"rows": 5, "rewritten": True, "lock": "ACCESS EXCLUSIVE"}
    # a shorter VARCHAR: narrowing, and the table is rewritten (checked, here: relfilenode)
    narrow = findings(events, "a009")
    assert "narrow-type" in narrow and "users.name from VARCHAR(200) to VARCHAR(60)" in narrow["narrow-type"]["message"]
    assert narrow["narrow-type"]["severity"] == "error" and narrow["narrow-type"]["file"].endswith("a009_narrow_name.py")
    assert all(o["passed"] for o in events if o.get("event") == "observation")
    assert observation(events, "a003")["tables"]["users"]["rows"] == 5


def test_mysql_alter_algorithms_are_what_the_server_accepts(tmp_path: Path, server_urls) -> None:
    events = observe(tmp_path, server_urls, "mysql", CHAIN)
    algorithms = {rev: [a["algorithm"] for t in observation(events, rev)["tables"].values() for a in t.get("alters", ())]
                  for rev in ("a003", "a005", "a007", "a008", "a009")}
    assert algorithms["a003"] == ["INSTANT"]  # ADD COLUMN with a default: instant on MySQL 8 / MariaDB 10.3+
    assert algorithms["a005"] == ["INPLACE"]  # an index is built in place, writes go on
    assert algorithms["a008"] == ["COPY"]     # INT -> BIGINT: the table is copied
    assert set(findings(events, "a003")) == set()
    assert set(findings(events, "a005")) == {"inplace-rebuild"}
    assert findings(events, "a005")["inplace-rebuild"]["severity"] == "info"
    assert "table-copy" in findings(events, "a008") and findings(events, "a008")["table-copy"]["table"] == "users"
    assert "table-copy" not in findings(events, "a007")
    assert "narrow-type" in findings(events, "a009") and "narrow-type" not in findings(events, "a007")
    # a step of several DDL statements is not atomic on MySQL
    assert "non-transactional-ddl" in findings(events, "a006")
    assert "non-transactional-ddl" not in findings(events, "a005")
    # the probe tables are gone again
    assert not any("mharness_probe" in str(e) for e in events if e.get("event") == "finding")


def test_sqlite_batch_copies_are_info_and_narrowing_is_not_a_finding(tmp_path: Path, server_urls) -> None:
    batch_narrow = Rev("a003", "narrow name", '''
with op.batch_alter_table("users") as batch:
    batch.alter_column("name", type_=sa.String(40), existing_type=sa.String(80), existing_nullable=False)
''', '''
with op.batch_alter_table("users") as batch:
    batch.alter_column("name", type_=sa.String(80), existing_type=sa.String(40), existing_nullable=False)
''')
    add = Rev("a004", "add flag", ADD_FLAG.upgrade, ADD_FLAG.downgrade)
    events = observe(tmp_path, server_urls, "sqlite", [batch_narrow, add])
    assert set(findings(events, "a003")) == {"batch-table-copy"}  # SQLite does not enforce a length
    assert findings(events, "a003")["batch-table-copy"]["table"] == "users"
    assert observation(events, "a003")["rows_touched"] == 5  # the copied rows
    assert findings(events, "a004") == {}  # a plain ADD COLUMN copies nothing


@pytest.mark.parametrize("dialect", ("sqlite", "postgresql", "mysql"))
def test_a_step_that_fails_only_on_rows_is_a_step_fails_finding(tmp_path: Path, server_urls, dialect: str) -> None:
    required = Rev("a003", "required nickname", 'op.add_column("users", sa.Column("nick", sa.String(20), '
                   'nullable=False))', 'op.drop_column("users", "nick")')
    after = Rev("a004", "add flag", ADD_FLAG.upgrade, ADD_FLAG.downgrade)
    unique = Rev("a003", "unique name", """
with op.batch_alter_table("users") as batch:
    batch.create_unique_constraint("uq_users_name", ["name"])
""", """
with op.batch_alter_table("users") as batch:
    batch.drop_constraint("uq_users_name", type_="unique")
""")
    events = observe(tmp_path, server_urls, dialect, [required, after])
    if dialect == "mysql":  # MariaDB fills '' into the new NOT NULL column, as FIELD_NOTES says
        assert "step-fails" not in findings(events, "a003")
    else:
        fails = findings(events, "a003")["step-fails"]
        assert fails["severity"] == "error" and "upgrade to a003" in fails["message"]
        assert not [e for e in events if e.get("event") == "observation" and e["revision"] == "a004"]
    # generated names are unique per row: a unique constraint on them passes everywhere
    events = observe(tmp_path / "u", server_urls, dialect, [unique])
    assert "step-fails" not in findings(events, "a003")


@pytest.mark.parametrize("dialect", SERVERS)
def test_an_env_py_with_its_own_engine_is_observed_too(tmp_path: Path, server_urls, dialect: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    original = make_project

    def with_own_engine(root: Path, revisions: list[Rev], models: str = "") -> Path:
        project = original(root, revisions, models)
        (project / "migrations" / "env.py").write_text(OWN_ENGINE_ENV)
        return project

    monkeypatch.setitem(globals(), "make_project", with_own_engine)
    events = observe(tmp_path, server_urls, dialect, [ADD_FLAG, PLAIN_INDEX])
    assert observation(events, "a003")["statements"] >= 1
    if dialect == "postgresql":
        assert set(findings(events, "a003")) == {"access-exclusive-lock"}
        assert set(findings(events, "a005")) == {"blocks-writes"}
    else:
        assert [a["algorithm"] for a in observation(events, "a005")["tables"]["posts"]["alters"]] == ["INPLACE"]
