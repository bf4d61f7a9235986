"""[rollout] ``migration-harness lint`` end to end: the example app and small broken chains, on real databases;
exit codes, ``--fail-on``, markers, ``--format github`` / ``json``, ``--sql-dir``, ``--explain`` / ``--list-rules``,
and bad input."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, run_cli, run_containers, scratch_leftovers
from projects import GOOD_MODELS, SLOW_LOAD, Rev, good_chain, make_project

ALL = ("sqlite", "postgresql", "mysql")


def lint(project: Path, server_urls: dict[str, str], *args: str, db: tuple[str, ...] = ALL,
         env: dict[str, str] | None = None) -> tuple[Any, dict[str, Any] | None]:
    """``migration-harness lint`` in ``project`` on the session's servers; the process and its JSON report."""
    reports = Path(tempfile.mkdtemp(prefix="lint-report-"))  # never inside the project (it may be this checkout)
    report = reports / "lint.json"
    full_env = {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"],
                **(env or {})}
    proc = run_cli(["lint", "--app", "app:create_app", f"--db={','.join(db)}", "--json", str(report), *args],
                   project, full_env)
    for dialect in ("postgresql", "mysql"):
        left = [n for n in scratch_leftovers(server_urls[dialect]) if n.startswith(f"mharness_{proc.run_id}_")]
        assert not left, f"scratch databases left on {dialect}: {left}"
    data = json.loads(report.read_text()) if report.exists() else None
    shutil.rmtree(reports, ignore_errors=True)
    return proc, data


def rules_at(report: dict[str, Any], revision: str, database: str) -> set[str]:
    return {f["rule"] for f in report["findings"] if f["revision"] == revision and f["database"] == database}


SCORE = Rev("a003", "add posts.score", 'op.add_column("posts", sa.Column("score", sa.Integer(), nullable=True))',
            'op.drop_column("posts", "score")')
REWRITE = Rev("a004", "posts.score to bigint", '''
op.alter_column("posts", "score", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=True)
''', '''
op.alter_column("posts", "score", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=True)
''')
SCORE_MODELS = GOOD_MODELS.replace('    title = db.Column(', '    score = db.Column(sa.BigInteger)\n    title = db.Column(')
CONCURRENT = Rev("a003", "index name concurrently", '''
with op.get_context().autocommit_block():
    op.create_index("ix_users_name", "users", ["name"], postgresql_concurrently=True)
''', '''
with op.get_context().autocommit_block():
    op.drop_index("ix_users_name", table_name="users", postgresql_concurrently=True)
''')
INDEX_MODELS = GOOD_MODELS.replace('name = db.Column(sa.String(80), nullable=False)',
                                   'name = db.Column(sa.String(80), nullable=False, index=True)')


def test_a_rewrite_fails_lint_and_names_database_revision_rule_and_line(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain() + [SCORE, REWRITE], SCORE_MODELS)
    proc, report = lint(project, server_urls, "--from", "a003", "-v", db=("postgresql", "mysql"))
    assert proc.returncode == 1, proc.stderr
    # progress says what happened: the revisions before --from are applied, only a004 is observed
    for dialect in ("postgresql", "mysql"):
        assert f"{dialect}: applying a003 (add posts.score), before --from: not observed" in proc.stderr
        assert f"{dialect}: observing a004 (posts.score to bigint)" in proc.stderr
        assert f"{dialect}: observing a003" not in proc.stderr
        assert f"{dialect}: offline SQL rendered and linted" in proc.stderr
    assert report["schema_version"] == 1 and report["command"] == "lint" and report["exit_code"] == 1
    assert [r["revision"] for r in report["revisions"]] == ["a004"]
    assert "table-rewrite" in rules_at(report, "a004", "postgresql")
    assert "table-copy" in rules_at(report, "a004", "mysql")
    rewrite = next(f for f in report["findings"] if f["rule"] == "table-rewrite")
    assert rewrite["file"] == "migrations/versions/a004_posts.score_to_bigint.py" and rewrite["line"] == 16
    assert rewrite["table"] == "posts" and rewrite["source"] == "observed"
    assert "lint FAILED" in proc.stdout and "table-rewrite (postgresql)" in proc.stdout
    for database in report["databases"]:
        assert database["status"] == "ok" and [o["revision"] for o in database["observations"]] == ["a004"]


def test_the_non_blocking_form_passes_and_the_github_format_annotates_lines(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain() + [CONCURRENT], INDEX_MODELS)
    proc, report = lint(project, server_urls, "--from", "a002", "--format", "github", db=("postgresql",))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not {"access-exclusive-lock", "blocks-writes", "index-without-concurrently"} & rules_at(
        report, "a003", "postgresql")
    plain = make_project(tmp_path / "q", good_chain() + [Rev("a003", "index name", 'op.create_index("ix_users_name", '
                         '"users", ["name"])', 'op.drop_index("ix_users_name", table_name="users")')], INDEX_MODELS)
    proc, report = lint(plain, server_urls, "--from", "a002", "--format", "github", db=("postgresql",))
    # the SQL rule says what and what to do instead; the observed SHARE lock is its evidence, not a second finding
    assert "index-without-concurrently" in rules_at(report, "a003", "postgresql")
    assert "blocks-writes" not in rules_at(report, "a003", "postgresql")
    index = next(f for f in report["findings"] if f["rule"] == "index-without-concurrently")
    assert index["details"]["observed_lock"] == "SHARE" and "observed: holds SHARE on users" in index["message"]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("::")]
    assert any(ln.startswith("::warning file=migrations/versions/a003_index_name.py,line=16,") and
               "title=index-without-concurrently (postgresql%2C a003)::" in ln for ln in lines), lines
    # --fail-on warning makes the same warnings fail
    assert proc.returncode == 0
    proc, _ = lint(plain, server_urls, "--from", "a002", "--fail-on", "warning", db=("postgresql",))
    assert proc.returncode == 1


def test_a_marker_in_the_migration_acknowledges_a_finding(tmp_path: Path, server_urls) -> None:
    allowed = Rev(REWRITE.revision, REWRITE.message,
                  "# migration-harness: allow table-rewrite — posts holds 200 rows in production\n"
                  "# migration-harness: allow table-copy@mysql — posts holds 200 rows in production\n"
                  + REWRITE.upgrade, REWRITE.downgrade)
    project = make_project(tmp_path / "p", good_chain() + [SCORE, allowed], SCORE_MODELS)
    proc, report = lint(project, server_urls, "--from", "a003", db=("postgresql", "mysql"))
    rewrite = next(f for f in report["findings"] if f["rule"] == "table-rewrite")
    assert rewrite["allowed"] == "posts holds 200 rows in production"
    failing = [f for f in report["findings"] if f["allowed"] is None and f["severity"] == "error"]
    assert proc.returncode == (1 if failing else 0), (failing, proc.stdout)
    assert "allowed: posts holds 200 rows in production" in proc.stdout


def test_example_app_lints_on_every_database_with_its_sql_written(tmp_path: Path, server_urls) -> None:
    sql_dir = tmp_path / "sql"
    proc, report = lint(REPO, server_urls, "--sql-dir", str(sql_dir), "-v")
    assert proc.returncode in (0, 1), proc.stderr
    assert report is not None and len(report["revisions"]) == len(list((REPO / "migrations" / "versions").glob("*.py")))
    for database in report["databases"]:
        assert database["status"] == "ok", database
        assert len(database["observations"]) == len(report["revisions"])
        assert all(o["passed"] for o in database["observations"])
    for dialect in ALL:
        files = sorted((sql_dir / dialect).glob("*.sql"))
        assert len(files) == len(report["revisions"]), (dialect, files)
    assert set(report["sql_files"]) == {str(p) for d in ALL for p in (sql_dir / d).glob("*.sql")}
    assert "step-fails" not in {f["rule"] for f in report["findings"]}
    # the slug backfill reads rows through op.get_bind(): no offline SQL for it, on any database, and it says where
    offline = [f for f in report["findings"] if f["rule"] == "offline-sql-failed" and f["revision"] == "667650b81e78"]
    assert {f["database"] for f in offline} == set(ALL)
    assert all(f["line"] == 44 and "backfilled_from_title.py:44" in f["message"] for f in offline), offline
    assert "-- ERROR:" in next((sql_dir / "postgresql").glob("*_667650b81e78.sql")).read_text()
    for dialect in ALL:  # and the progress line does not claim it was rendered
        line = next(ln for ln in proc.stderr.splitlines() if ln.startswith(f"{dialect}: offline SQL"))
        assert "could not be rendered (" in line and "667650b81e78" in line and "rendered and linted" not in \
            line.partition(";")[0], line
    # MySQL copies posts to check the new CHECK constraint; the example's migration acknowledges it
    copy = [f for f in report["findings"] if f["rule"] == "table-copy"]
    assert [(f["database"], f["revision"], f["allowed"]) for f in copy] == [
        ("mysql", "c0d05e7c5b3a", "posts is small when this revision ships")]
    assert proc.returncode == 0, [f for f in report["findings"] if f["severity"] == "error" and not f["allowed"]]


def test_no_observe_starts_no_database(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain() + [SCORE, REWRITE], SCORE_MODELS)
    proc, report = lint(project, server_urls, "--no-observe", env={"HARNESS_POSTGRESQL_URL": "",
                                                                   "HARNESS_MYSQL_URL": "",
                                                                   "DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert proc.returncode in (0, 1), proc.stderr
    assert all(d["observations"] == [] for d in report["databases"])
    assert not {f["source"] for f in report["findings"]} & {"observed"}
    assert not run_containers(proc.run_id)


def test_lint_in_a_container_it_starts_and_removes(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain() + [SCORE, REWRITE], SCORE_MODELS)
    proc, report = lint(project, server_urls, "--from", "a003", db=("postgresql",),
                        env={"HARNESS_POSTGRESQL_URL": ""})
    assert proc.returncode == 1, proc.stderr
    database = report["databases"][0]
    assert database["backend"] == "container" and database["server_version"].startswith("PostgreSQL")
    assert "table-rewrite" in rules_at(report, "a004", "postgresql")
    assert not run_containers(proc.run_id)


def test_an_interrupted_lint_leaves_nothing_behind(tmp_path: Path, server_urls) -> None:
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env

    slow = Rev("a003", "slow step", 'op.execute("SELECT pg_sleep(60)")', "pass")
    project = make_project(tmp_path / "p", good_chain() + [slow], GOOD_MODELS)
    env = cli_env({"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]})
    proc = subprocess.Popen([sys.executable, "-m", "harness", "lint", "--app", "app:create_app", "--db",
                             "postgresql", "-v"], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_id = env["HARNESS_RUN_ID"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the observed run's scratch database exists
        if [n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{run_id}_")]:
            break
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not [n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{run_id}_")]
    assert not run_containers(run_id)


@pytest.mark.fast
def test_explain_and_list_rules(tmp_path: Path) -> None:
    proc = run_cli(["lint", "--explain", "table-rewrite"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "relfilenode" in proc.stdout and "Why it matters:" in proc.stdout and "Safer:" in proc.stdout
    listed = run_cli(["lint", "--list-rules"], tmp_path)
    assert listed.returncode == 0
    for rule in ("table-rewrite", "access-exclusive-lock", "table-copy", "batch-table-copy", "step-fails"):
        assert rule in listed.stdout
    unknown = run_cli(["lint", "--explain", "table-rewrit"], tmp_path)
    assert "did you mean table-rewrite" in unknown.stderr
    assert unknown.returncode == 2 and unknown.stderr.startswith("migration-harness: error:")
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_a_database_that_cannot_be_provided_is_exit_3_and_says_why(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc, report = lint(project, server_urls, "-q", db=("sqlite", "postgresql"),
                        env={"HARNESS_POSTGRESQL_URL": "postgresql://nobody:s3cret-pw@127.0.0.1:9/none"})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    database = next(d for d in report["databases"] if d["dialect"] == "postgresql")
    assert database["status"] == "error" and database["message"].startswith("unavailable: cannot connect")
    assert "migration-harness: postgresql: unavailable" in proc.stderr  # said even with -q
    assert "s3cret-pw" not in proc.stdout + proc.stderr + json.dumps(report)
    assert next(d for d in report["databases"] if d["dialect"] == "sqlite")["status"] == "ok"


@pytest.mark.fast
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, server_urls) -> None:
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc, report = lint(project, server_urls, "--from", "zzzz", db=("sqlite",))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "zzzz" in proc.stderr
    proc = run_cli(["lint", "--app", "app:create_app", "--fail-on", "bogus"], project)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.fast
def test_sql_writes_each_revisions_offline_sql_and_names_what_cannot_be_reviewed(tmp_path: Path) -> None:
    out = tmp_path / "review"
    proc = run_cli(["sql", "--app", "app:create_app", "--sql-dir", str(out), "--json", str(tmp_path / "r.json")], REPO)
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["command"] == "sql" and report["schema_version"] == 1 and not report["ok"]
    for database in report["databases"]:
        assert len(database["files"]) == database["revisions"] == 10
        failed = {(f["revision"], f["rule"]) for f in database["findings"]}
        assert ("667650b81e78", "offline-sql-failed") in failed, database["dialect"]
        slug = next(f for f in database["findings"] if f["revision"] == "667650b81e78")
        assert slug["file"] == "migrations/versions/667650b81e78_add_posts_slug_backfilled_from_title.py"
    assert "ALTER TABLE users RENAME name TO display_name" in next(
        (out / "postgresql").glob("*_f66c6918c405.sql")).read_text()
    assert "offline SQL INCOMPLETE" in proc.stdout
    # a chain that renders everywhere: exit 0, one file per revision per database
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    proc = run_cli(["sql", "--app", "app:create_app", "--sql-dir", str(tmp_path / "good"), "-q"], project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "offline SQL complete: every revision rendered on every database"
    for dialect in ALL:
        assert len(list((tmp_path / "good" / dialect).glob("*.sql"))) == 2
    bad = run_cli(["sql", "--app", "app:create_app", "--sql-dir", str(tmp_path / "x"), "--from", "nope"], project)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # bad input leaves nothing behind


def test_a_bad_lint_setting_stops_the_preflight_already_loading_and_leaves_nothing(tmp_path: Path,
                                                                                  server_urls) -> None:
    """lint starts its preflight before it imports the rest of itself and reads pyproject.toml: a usage error found
    there is one line and exit 2, and the preflight's worker and files are gone."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    # each load notes itself, then takes its time: the preflight is still loading when lint reads pyproject.toml
    (project / "app.py").write_text((project / "app.py").read_text() + SLOW_LOAD)
    (project / "pyproject.toml").write_text('[tool.migration-harness.lint]\nfail_on = "fatal"\n')
    temp, loads = tmp_path / "tmp", tmp_path / "loads.txt"
    temp.mkdir()
    proc, report = lint(project, server_urls, env={"TMPDIR": str(temp), "HARNESS_TEST_LOADS": str(loads)})
    assert proc.returncode == 2 and report is None, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "fatal" in proc.stderr, proc.stderr
    # the preflight's worker was stopped wherever it was (before or while loading the app), its files removed
    assert (loads.read_text().split() if loads.exists() else []) in ([], ["load"])
    assert [p.name for p in temp.iterdir()] == ["mharness_runs"] and not list((temp / "mharness_runs").iterdir())
