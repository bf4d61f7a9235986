"""[proofs] Production's size and how long each step will hold its locks there: table sizes read from the catalogue
(read-only), each pending step measured at two generated sizes and extrapolated, the lock budget, and the
lock-timeout finding. Real databases throughout (the session's PostgreSQL and MySQL / MariaDB servers)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from harness.backends import get_backend
from harness.backends.base import TableSize
from harness.config import DatabaseSettings, build_config
from harness.estimate.fit import CONSTANT, SIZE, estimate_all
from harness.estimate.run import measure_steps
from harness.rehearse.source import read_sizes
from conftest import run_cli
from projects import Rev, good_chain, make_project
from test_rehearse import _engine, catalogue_checksum, flask_upgrade, production, rehearse  # noqa: F401 (fixture)

INDEXED_MODELS = '''
class User(db.Model):
    __tablename__ = "users"
    id = db.Column(sa.Integer, primary_key=True)
    name = db.Column(sa.String(80), nullable=False, index=True)


class Post(db.Model):
    __tablename__ = "posts"
    id = db.Column(sa.Integer, primary_key=True)
    user_id = db.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=False)
    title = db.Column(sa.String(200), nullable=False, index=True)
'''
INDEX_NAME = Rev("a003", "index users name", 'op.create_index("ix_users_name", "users", ["name"])',
                 'op.drop_index("ix_users_name", table_name="users")')
ADD_FLAG = Rev("a003", "add flag", 'op.add_column("users", sa.Column("flag", sa.Integer(), nullable=False, '
               'server_default="0"))', 'op.drop_column("users", "flag")')
RETYPE = Rev("a004", "flag to bigint", 'op.alter_column("users", "flag", type_=sa.BigInteger(), '
             'existing_type=sa.Integer(), existing_nullable=False, existing_server_default="0")', "pass")


def fill_users(url: str, rows: int) -> None:
    """``rows`` users in production, by one INSERT ... SELECT (and ANALYZE on PostgreSQL, as autovacuum would)."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("INSERT INTO users (name) SELECT 'user' || g FROM generate_series(1, :n) g"),
                             {"n": rows})
                conn.execute(sa.text("ANALYZE users"))
            elif conn.dialect.name == "mysql":
                conn.execute(sa.text(f"INSERT INTO users (name) SELECT concat('user', seq) FROM seq_1_to_{rows}"))
                conn.execute(sa.text("ANALYZE TABLE users"))
            else:
                conn.execute(sa.text("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
                                     "INSERT INTO users (name) SELECT 'user' || n FROM g"), {"n": rows})
    finally:
        engine.dispose()


# -- production's sizes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_table_sizes_come_from_the_catalogue_and_change_nothing(dialect, server_urls, production, tmp_path) -> None:
    project = make_project(tmp_path / "p", good_chain(), INDEXED_MODELS)
    url = production(dialect)
    flask_upgrade(project, url, "a002")
    fill_users(url, 5000)
    before = catalogue_checksum(url) if dialect != "sqlite" else Path(sa.engine.make_url(url).database).read_bytes()
    found_dialect, version, sizes = read_sizes(url)
    after = catalogue_checksum(url) if dialect != "sqlite" else Path(sa.engine.make_url(url).database).read_bytes()
    assert before == after
    assert found_dialect == dialect and version
    assert set(sizes) == {"users", "posts"}  # alembic_version left out
    users = sizes["users"]
    assert users.rows_estimated is (dialect != "sqlite")
    # InnoDB's figure is an estimate that can be off by 40-50 %; PostgreSQL's right after ANALYZE, SQLite's exact
    assert users.rows is not None and (users.rows == 5000 if dialect != "mysql" else 2500 <= users.rows <= 7500)
    assert users.bytes and users.bytes > 0
    assert sizes["posts"].rows == 0


def test_a_postgresql_table_never_analysed_is_counted_when_small_and_unknown_when_big(server_urls, production,
                                                                                     tmp_path) -> None:
    url = production("postgresql")
    engine = _engine(url)
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(sa.text("CREATE TABLE fresh AS SELECT g AS id FROM generate_series(1, 20000) g"))
        # about 80 MB: over what the harness counts by itself (64 MiB)
        conn.execute(sa.text("CREATE TABLE big AS SELECT g AS id, repeat('x', 500) AS pad "
                             "FROM generate_series(1, 150000) g"))
    engine.dispose()
    sizes = read_sizes(url)[2]
    assert sizes["fresh"] == TableSize(20000, sizes["fresh"].bytes, False)  # counted: exact
    assert sizes["big"] == TableSize(None, sizes["big"].bytes, True)


# -- estimates --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_an_estimate_from_two_sizes_is_a_fit_at_production_s_rows(dialect, server_urls, tmp_path) -> None:
    """Estimated from 10k and 50k rows at production's 100k: the rewrite is a size fit that blocks writes on
    ``users`` and keeps both measurements; the catalogue step (ADD COLUMN with a constant default) says constant.
    How close the fit comes to a real run at that size is a benchmark's question, not a timed test's (on a loaded
    CI machine one measurement swung five times): ``benchmarks/estimates.py``, results in BENCHMARKS.md."""
    project = make_project(tmp_path / "p", good_chain() + [ADD_FLAG, RETYPE], INDEXED_MODELS)
    config = build_config(app="app:create_app", db=(dialect,), from_revision="a002", checks=("upgrade",),
                          cwd=str(project))
    run_id = secrets.token_hex(4)
    with get_backend(dialect).server(DatabaseSettings(dialect, url=server_urls[dialect]), run_id) as server:
        small = measure_steps(config, server, dialect, run_id, (10_000, 50_000))
    assert not small.errors and not small.failures
    rows = 100_000
    constant, retype = estimate_all(small, ["a003", "a004"], {"users": TableSize(rows, None, False)})
    assert constant.kind == CONSTANT and "constant" in constant.describe()
    assert retype.kind == SIZE and retype.blocks_writes and retype.table == "users"
    assert retype.to_dict()["rows"] == rows and len(retype.to_dict()["measured"]) == 2
    assert retype.seconds > 0, retype


# -- the lock budget --------------------------------------------------------------------------------------------------
def test_rehearse_over_the_lock_budget_is_unsafe_and_under_it_safe(server_urls, production, tmp_path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [INDEX_NAME], INDEXED_MODELS)
    url = production("postgresql")
    flask_upgrade(project, url, "a002")
    fill_users(url, 20_000)
    proc, report = rehearse(project, url, server_urls, "--lock-budget", "0.0001")
    assert proc.returncode == 1, proc.stderr
    step = report["steps"][0]
    assert step["estimate"]["kind"] == "size" and step["estimate"]["lock"] == "SHARE"
    assert step["estimate"]["rows"] == 20_000 and step["estimate"]["seconds"] > 0.0001
    assert report["source"]["table_sizes"]["users"]["rows"] == 20_000
    assert [r for r in report["reasons"] if "over the lock budget" in r and "CONCURRENTLY" in r and "a003" in r]
    proc, report = rehearse(project, url, server_urls, "--lock-budget", "3600")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["verdict"] == "safe" and report["steps"][0]["estimate"]["seconds"] < 3600


def lint(project: Path, server_urls: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    report = project / f"lint-{secrets.token_hex(3)}.json"
    proc = run_cli(["lint", "--app", "app:create_app", "--from", "a002", "--json", str(report), *args], project,
                   {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]})
    assert report.exists(), proc.stderr
    return proc.returncode, json.loads(report.read_text())


def test_lint_budget_from_production_sizes_fails_over_and_passes_under(server_urls, production, tmp_path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [INDEX_NAME], INDEXED_MODELS)
    url = production("postgresql")
    flask_upgrade(project, url, "a002")
    fill_users(url, 20_000)
    code, report = lint(project, server_urls, "--db", "postgresql", "--sizes-from", url, "--lock-budget", "0.0001",
                        "--estimate-rows", "2000,20000")
    budget = [f for f in report["findings"] if f["rule"] == "lock-budget"]
    assert code == 1 and len(budget) == 1 and budget[0]["revision"] == "a003"
    assert "CONCURRENTLY" in budget[0]["message"] and "users" in budget[0]["message"]
    assert report["production"]["table_sizes"]["users"]["rows"] == 20_000
    assert report["databases"][0]["estimates"][0]["revision"] == "a003"
    code, report = lint(project, server_urls, "--db", "postgresql", "--sizes-from", url, "--lock-budget", "3600",
                        "--estimate-rows", "2000,20000")
    assert code == 0 and not [f for f in report["findings"] if f["rule"] == "lock-budget"]
    assert [f for f in report["findings"] if f["rule"] == "lock-estimate"]


# -- no lock timeout --------------------------------------------------------------------------------------------------
def test_no_lock_timeout_is_found_unless_env_py_sets_one(server_urls, tmp_path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [INDEX_NAME], INDEXED_MODELS)
    code, report = lint(project, server_urls, "--db", "postgresql,mysql")
    missing = {(f["database"], f["revision"]) for f in report["findings"] if f["rule"] == "no-lock-timeout"}
    assert missing == {("postgresql", "a003"), ("mysql", "a003")}
    mysql = next(f for f in report["findings"] if f["rule"] == "no-lock-timeout" and f["database"] == "mysql")
    assert "lock_wait_timeout" in mysql["message"] and mysql["table"] == "users"
    env_py = project / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace(
        "        with context.begin_transaction():",
        "        connection.exec_driver_sql(\"SET lock_timeout = '5s'\" if connection.dialect.name == 'postgresql'\n"
        "                                   else 'SET SESSION lock_wait_timeout = 5')\n"
        "        with context.begin_transaction():", 1))
    assert "lock_wait_timeout" in env_py.read_text()
    code, report = lint(project, server_urls, "--db", "postgresql,mysql")
    assert not [f for f in report["findings"] if f["rule"] == "no-lock-timeout"], report["findings"]
