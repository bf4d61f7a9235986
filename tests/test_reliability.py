"""[reliability] nothing leaks, nothing hangs, nothing it did not create is touched: real signals, real kills,
real locks, against real containers and servers."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from conftest import cli_env, list_databases, run_cli, run_containers, scratch_leftovers
from projects import GOOD_MODELS, OWN_ENGINE_ENV, Rev, good_chain, make_project

SLEEPER = Rev("a003", "slow step", """
    import os, pathlib, time
    pathlib.Path(os.environ["HARNESS_TEST_MARKER"]).write_text(str(os.getpid()))
    time.sleep(120)
""", "pass")


def start(project: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A harness run in the background; its ``run_id`` attribute names its containers and scratch databases."""
    full = cli_env(env)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--app", "app:create_app", *args], cwd=project,
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.run_id = full["HARNESS_RUN_ID"]  # type: ignore[attr-defined]
    return proc


def own_databases(url: str, run_id: str) -> set[str]:
    return {name for name in scratch_leftovers(url) if name.startswith(f"mharness_{run_id}_")}


def wait_for(marker: Path, proc: subprocess.Popen, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.2)


def sleeping_project(tmp_path: Path) -> tuple[Path, Path]:
    return make_project(tmp_path / "p", good_chain() + [SLEEPER], GOOD_MODELS), tmp_path / "marker"


def test_sigint_mid_chain_removes_the_container(tmp_path: Path) -> None:
    project, marker = sleeping_project(tmp_path)
    report = tmp_path / "report.json"
    # one session (single_head, then the upgrade that reaches the slow step): what ran before it is known
    proc = start(project, ["--db", "postgresql", "--checks", "single_head,upgrade", "--json", str(report)],
                 {"HARNESS_POSTGRESQL_URL": "", "HARNESS_TEST_MARKER": str(marker)})
    wait_for(marker, proc)
    assert len(run_containers(proc.run_id)) == 1
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted; containers and scratch databases were removed" in err
    assert run_containers(proc.run_id) == set()
    written = json.loads(report.read_text())  # a CI step still finds the report, saying why there is no verdict
    assert (written["exit_code"], written["run_id"]) == (130, proc.run_id) and "interrupted" in written["error"]
    # with what ran: the checks that had finished before the slow step was interrupted
    database = written["databases"][0]
    assert (database["dialect"], database["status"], database["message"]) == ("postgresql", "error", "interrupted")
    assert [(c["name"], c["status"]) for c in database["checks"]] == [("single_head", "passed")]


def test_sigterm_mid_chain_drops_the_scratch_database(tmp_path: Path, server_urls) -> None:
    project, marker = sleeping_project(tmp_path)
    proc = start(project, ["--db", "mysql"], {"HARNESS_MYSQL_URL": server_urls["mysql"],
                                              "HARNESS_TEST_MARKER": str(marker)})
    wait_for(marker, proc)
    assert own_databases(server_urls["mysql"], proc.run_id), "the run should have a scratch database now"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert own_databases(server_urls["mysql"], proc.run_id) == set()


def test_kill_9_leaves_things_that_clean_removes_and_nothing_else(tmp_path: Path, server_urls) -> None:
    pg = server_urls["postgresql"]
    keep = "mharness_keep_me"  # not a harness name: clean must not touch it
    engine = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{keep}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{keep}"'))
    try:
        project, marker = sleeping_project(tmp_path)
        proc = start(project, ["--db", "postgresql,mysql"], {"HARNESS_POSTGRESQL_URL": pg, "HARNESS_MYSQL_URL": "",
                                                             "HARNESS_TEST_MARKER": str(marker)})
        wait_for(marker, proc)
        proc.kill()
        proc.communicate(timeout=30)
        leftover = own_databases(pg, proc.run_id)
        assert leftover  # one per session that had started (sessions run concurrently)
        marker.unlink()
        # a second run that is alive right now: clean must leave its database and container alone
        live = start(project, ["--db", "mysql,postgresql"], {"HARNESS_POSTGRESQL_URL": pg, "HARNESS_MYSQL_URL": "",
                                                             "HARNESS_TEST_MARKER": str(marker)})
        wait_for(marker, live)
        assert len(run_containers(live.run_id)) == 1
        live_databases = own_databases(pg, live.run_id)
        # --run-id: only these runs' leftovers (another harness run may share this engine and these servers)
        cleaned = run_cli(["clean", "--run-id", proc.run_id, "--run-id", live.run_id], tmp_path,
                          {"HARNESS_POSTGRESQL_URL": pg, "HARNESS_MYSQL_URL": ""})
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        for name in leftover:
            assert f"removed database {name}" in cleaned.stdout
        assert own_databases(pg, proc.run_id) == set()
        # the live run's are still there (it may have made another since, a scratch database for its next session)
        assert live_databases <= own_databases(pg, live.run_id)
        assert len(run_containers(live.run_id)) == 1
        assert keep in list_databases(pg)
        live.send_signal(signal.SIGINT)
        live.communicate(timeout=60)
        assert run_containers(live.run_id) == set() and own_databases(pg, live.run_id) == set()
        assert run_containers(proc.run_id) == set()
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{keep}"'))
        engine.dispose()


def test_clean_removes_a_container_left_by_kill_9(tmp_path: Path) -> None:
    project, marker = sleeping_project(tmp_path)
    proc = start(project, ["--db", "postgresql"], {"HARNESS_POSTGRESQL_URL": "", "HARNESS_TEST_MARKER": str(marker)})
    wait_for(marker, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert len(run_containers(proc.run_id)) == 1
    cleaned = run_cli(["clean", "--run-id", proc.run_id], tmp_path, {"HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": ""})
    assert cleaned.returncode == 0 and "removed container" in cleaned.stdout, cleaned.stdout + cleaned.stderr
    assert run_containers(proc.run_id) == set()


def test_a_step_past_the_time_limit_is_stopped_and_the_run_goes_on(harness, tmp_path: Path) -> None:
    project, marker = sleeping_project(tmp_path)
    started = time.monotonic()
    run = harness(project, "--step-timeout", "4", "--checks", "upgrade", db=("sqlite", "postgresql"),
                  env={"HARNESS_TEST_MARKER": str(marker)})
    assert time.monotonic() - started < 60
    assert run.exit_code == 1
    for dialect in ("sqlite", "postgresql"):
        check = run.check(dialect, "upgrade")
        assert (check["status"], check["revision"]) == ("error", "a003")
        assert f"upgrade to a003 (slow step) did not finish within 4s on {dialect}" in check["message"]


LOCKED = Rev("a003", "alter a locked table", """
    other = op.get_bind().engine.connect()  # a second session that holds a lock on users
    other.begin()
    other.execute(sa.text("SELECT * FROM users"))
    op.add_column("users", sa.Column("nickname", sa.String(length=20), nullable=True))
""", "pass")


def test_a_step_blocked_by_a_lock_fails_at_the_lock_timeout(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [LOCKED], GOOD_MODELS)
    started = time.monotonic()
    run = harness(project, "--lock-timeout", "2", "--checks", "upgrade", db=("postgresql", "mysql"))
    assert time.monotonic() - started < 90
    assert run.statuses("upgrade") == {"postgresql": "failed", "mysql": "failed"}
    assert run.check("postgresql", "upgrade")["revision"] == "a003"
    assert "lock timeout" in run.check("postgresql", "upgrade")["message"]
    assert "Lock wait timeout exceeded" in run.check("mysql", "upgrade")["message"]


def test_an_env_py_with_its_own_engine_gets_the_lock_timeout_and_the_sql_echo(harness, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [LOCKED], GOOD_MODELS)
    (project / "migrations" / "env.py").write_text(OWN_ENGINE_ENV)  # engine_from_config: not the app's engine
    started = time.monotonic()
    run = harness(project, "--lock-timeout", "2", "--checks", "upgrade", "-v", db=("postgresql", "mysql"))
    assert time.monotonic() - started < 90
    assert "lock timeout" in run.check("postgresql", "upgrade")["message"]
    assert "Lock wait timeout exceeded" in run.check("mysql", "upgrade")["message"]
    assert "ALTER TABLE users ADD COLUMN nickname" in run.stdout  # -v shows the step's SQL from that engine


def test_passwords_never_appear_in_any_output(harness, tmp_path: Path, server_urls) -> None:
    urls = dict(server_urls)
    pg = sa.engine.make_url(urls["postgresql"])
    if not pg.password:  # a trust-auth server accepts (and ignores) a password: the URL must still hide it
        urls["postgresql"] = pg.set(password="S3cret-pg-pass").render_as_string(hide_password=False)
    secrets = [p for p in (sa.engine.make_url(u).password for u in urls.values()) if p]
    models = GOOD_MODELS.replace("sa.String(80)", "sa.String(100)")  # drift, so differences are printed
    broken = Rev("a003", "broken", "op.execute('SELECT * FROM no_such_table')", "pass")
    run = harness(make_project(tmp_path / "p", good_chain() + [broken], models), db=("postgresql", "mysql"),
                  env={"HARNESS_POSTGRESQL_URL": urls["postgresql"], "HARNESS_MYSQL_URL": urls["mysql"]})
    assert run.exit_code == 1
    bad = run_cli(["run", "--app", "app:create_app", "--db", "postgresql"], tmp_path / "p",
                  {"HARNESS_POSTGRESQL_URL": urls["postgresql"].replace("@", "x@", 1) if "@" in urls["postgresql"] else ""})
    outputs = [run.stdout, run.stderr, json.dumps(run.report), bad.stdout, bad.stderr]
    assert secrets
    for secret in secrets:
        for output in outputs:
            assert secret not in output


def test_two_runs_at_once_on_the_same_servers(tmp_path: Path, server_urls) -> None:
    env = {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_MYSQL_URL": server_urls["mysql"]}
    procs = []
    for n in (1, 2):
        project = make_project(tmp_path / f"p{n}", good_chain(), GOOD_MODELS)
        procs.append(start(project, ["--checks", "upgrade,downgrade,leaves_no_trace", "--json",
                                     str(tmp_path / f"r{n}.json")], env))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    ids = {json.loads((tmp_path / f"r{n}.json").read_text())["run_id"] for n in (1, 2)}
    assert len(ids) == 2
    for url in server_urls.values():
        assert not [d for d in scratch_leftovers(url) if any(d.startswith(f"mharness_{i}_") for i in ids)]


def test_a_worker_that_dies_mid_step_is_an_error_naming_the_step_and_leaves_nothing(harness, tmp_path: Path) -> None:
    crash = Rev("a003", "crash", "import os\nos._exit(3)", "pass")
    run = harness(make_project(tmp_path / "p", good_chain() + [crash], GOOD_MODELS), "--checks", "upgrade,downgrade")
    assert run.exit_code == 1
    for dialect in ("sqlite", "postgresql", "mysql"):
        upgrade = run.check(dialect, "upgrade")
        assert (upgrade["status"], upgrade["revision"]) == ("error", "a003")
        assert upgrade["message"].startswith(f"upgrade to a003 (crash) on {dialect}: the worker exited with code 3")
        assert run.check(dialect, "downgrade")["status"] == "skipped"
    assert run_containers(run.report["run_id"]) == set()  # and the harness fixture checked the scratch databases
    import tempfile
    # nor a temporary directory of the run (the workers' bind files), although every worker was killed mid-step
    assert list(Path(tempfile.gettempdir()).glob(f"mharness_{run.report['run_id']}_*")) == []


#: the app's factory stalls while the preflight loads it (on its throwaway SQLite file), after saying so
STALLS_IN_THE_PREFLIGHT = '''

_create_app = create_app


def create_app(config=None):
    if "_preflight_" in os.environ.get("DATABASE_URL", "") and os.environ.get("HARNESS_TEST_MARKER"):
        import pathlib, time
        pathlib.Path(os.environ["HARNESS_TEST_MARKER"]).write_text(str(os.getpid()))
        time.sleep(120)
    return _create_app(config)
'''


def test_sigint_while_the_preflight_loads_the_app_stops_it_and_leaves_nothing(tmp_path: Path) -> None:
    """The preflight starts before the parent has imported what the databases need: interrupted then, its worker
    is stopped and its throwaway directory removed, and the run says it was interrupted."""
    import os
    import tempfile

    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "app.py").write_text((project / "app.py").read_text() + STALLS_IN_THE_PREFLIGHT)
    marker = tmp_path / "marker"
    proc = start(project, ["--db", "sqlite"], {"HARNESS_TEST_MARKER": str(marker)})
    wait_for(marker, proc)
    worker = int(marker.read_text())
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, out + err
    assert time.monotonic() - started < 20, "the stalled preflight was waited for instead of stopped"
    try:
        os.kill(worker, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the preflight's worker is still running"
    left = [p.name for p in Path(tempfile.gettempdir()).glob(f"mharness_{proc.run_id}_*")]
    assert left == [], left
