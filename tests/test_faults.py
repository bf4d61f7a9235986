"""[faults] A database that dies, freezes, fills up or loses its worker mid-run costs that database's verdict only:
an ``error`` naming the fault and where it struck, never ``failed at <revision>``; the others keep theirs; every
report is written; nothing is left behind that ``clean --run-id`` cannot remove. Faults injected for real:
``docker kill``, ``docker pause``, a server the test started and stops, a Docker socket that goes away, SIGKILL."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from conftest import IMAGES, cli_env, run_cli, run_containers, scratch_leftovers
from projects import APP_PY, GOOD_MODELS, Rev, good_chain, make_project
from test_reliability import start

#: The first session to reach it writes ``<marker>.<dialect>`` (holding the worker's pid), then sleeps in the
#: database, so that the test strikes while a statement runs; every later session passes straight through.
SLOW = Rev("a003", "slow step", """
    import os
    marker, dialect = os.environ.get("HARNESS_TEST_MARKER"), op.get_bind().dialect.name
    seconds = int(os.environ.get("HARNESS_TEST_SLEEP", "30"))
    if marker and dialect != "sqlite" and not op.get_context().as_sql:  # not lint's offline rendering
        try:
            with open(f"{marker}.{dialect}", "x") as f:
                f.write(str(os.getpid()))
        except FileExistsError:
            pass
        else:
            op.execute(f"SELECT pg_sleep({seconds})" if dialect == "postgresql" else f"SELECT SLEEP({seconds})")
""", "pass")

#: A data migration that writes about 300 MB (MySQL / MariaDB): more than a small tmpfs holds.
FILL = Rev("a003", "fill the disk", """
    op.create_table("digits", sa.Column("d", sa.Integer()))
    op.execute("INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)")
    op.create_table("big", sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True), sa.Column("t", sa.Text()))
    op.execute("INSERT INTO big (t) SELECT repeat('x', 3000) FROM digits a, digits b, digits c, digits d, digits e")
""", 'op.drop_table("big")\nop.drop_table("digits")')

#: An app whose start-up writes to its database (so that each session gets a worker of its own, the parent waiting
#: for the one before to exit) and whose first PostgreSQL worker, once it has served its session and exits, writes
#: the marker and waits for ``<marker>.go``: the test strikes between two sessions, none of them running.
BETWEEN_SESSIONS = APP_PY + """
import atexit, pathlib, time
import sqlalchemy as sa

_create_app = create_app


def create_app(config=None):
    app = _create_app(config)
    marker = os.environ.get("HARNESS_TEST_MARKER")
    if marker and app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS boot_log (at VARCHAR(40))"))
        atexit.register(_between_sessions, marker)
    return app


def _between_sessions(marker):
    try:
        with open(marker, "x") as f:
            f.write(str(os.getpid()))
    except FileExistsError:
        return
    go, deadline = pathlib.Path(marker + ".go"), time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
"""

#: The same on PostgreSQL: some 200 MB of rows (random, so TOAST cannot compress them away) and as much WAL.
FILL_PG = Rev("a003", "fill the disk", """
    op.create_table("big", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("t", sa.Text()))
    op.execute("INSERT INTO big (t) SELECT md5(random()::text) || md5(random()::text) "
               "FROM generate_series(1, 2000000)")
""", 'op.drop_table("big")')

NOT_A_VERDICT = "an environment fault, not a verdict on the migrations"
NO_URLS = {"HARNESS_POSTGRESQL_URL": "", "HARNESS_MYSQL_URL": ""}


def wait_for(path: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    """Until the slow step has begun on the database ``path`` names (bounded)."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name}: the slow step never started"
        time.sleep(0.1)


def kill_worker_mid_step(marker: Path, dialect: str, proc: subprocess.Popen) -> None:
    """SIGKILL the worker running the slow step on ``dialect`` once it has begun (its pid is in the marker file)."""
    pid_file = Path(f"{marker}.{dialect}")
    wait_for(pid_file, proc)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def container_of(run_id: str, image: str) -> str:
    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label=org.migration-harness.run={run_id}",
                          "--filter", f"ancestor={image}"], capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == 1, out
    return out[0]


def remove_containers(run_id: str) -> None:
    """Whatever a failed test left of its own run (never anyone else's containers)."""
    for container in run_containers(run_id):
        subprocess.run(["docker", "unpause", container], capture_output=True)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        remove_containers(proc.run_id)


def faulted(report: dict[str, Any], dialect: str) -> list[dict[str, Any]]:
    database = next(d for d in report["databases"] if d["dialect"] == dialect)
    return [c for c in database["checks"] if c["status"] in ("failed", "error")]


@pytest.fixture
def slow_project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p", good_chain() + [SLOW], GOOD_MODELS)


def test_container_killed_mid_step_costs_that_database_only(slow_project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    reports = {ext: tmp_path / f"report.{ext}" for ext in ("json", "xml", "md", "html")}
    proc = start(slow_project, ["--json", str(reports["json"]), "--junit", str(reports["xml"]), "--markdown",
                                str(reports["md"]), "--html", str(reports["html"])],
                 {**NO_URLS, "HARNESS_TEST_MARKER": str(marker), "HARNESS_TEST_SLEEP": "120"})
    # each database's container is killed as soon as its own slow step has begun (whichever comes first: on a
    # loaded machine one can start long before the other)
    waiting, deadline = {"postgresql", "mysql"}, time.monotonic() + 180
    while waiting:
        for dialect in sorted(d for d in waiting if Path(f"{marker}.{d}").exists()):
            subprocess.run(["docker", "kill", container_of(proc.run_id, IMAGES[dialect])], check=True,
                           capture_output=True)
            waiting.discard(dialect)
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the slow step never started on {', '.join(sorted(waiting))}"
        time.sleep(0.1)
    out, err = finish(proc)
    assert proc.returncode == 3, out + err  # could not be verified: not 1 (nothing failed), not 4 (no crash)
    report = json.loads(reports["json"].read_text())
    assert all(path.stat().st_size for path in reports.values())
    assert next(d for d in report["databases"] if d["dialect"] == "sqlite")["status"] == "passed"
    for dialect in ("postgresql", "mysql"):
        database = next(d for d in report["databases"] if d["dialect"] == dialect)
        assert database["status"] == "error"
        assert database["checks"][0] == {**database["checks"][0], "name": "single_head", "status": "passed"}
        bad = faulted(report, dialect)
        assert bad and all(c["status"] == "error" and c["fault"] == "server_gone" and c["revision"] is None
                           for c in bad), bad
        # whichever session reached the slow step first, its check names it as where the fault struck
        struck = [c for c in bad if "upgrade to a003 (slow step)" in c["message"]]
        assert struck, [c["message"] for c in bad]
        assert "the container had exited with code 137" in struck[0]["message"]
        assert struck[0]["message"].startswith(f"{dialect}: the server went away during the {struck[0]['name']} check")
    assert "failed" not in reports["md"].read_text().replace("What failed", "")
    assert "went away" in out and "not ok (exit 3)" in out
    assert run_containers(proc.run_id) == set()


#: The last step of the first session (the upgrade check) on PostgreSQL, the first time it runs: writes the marker
#: (the worker's pid) and waits, in Python, for ``<marker>.go``; every later run passes straight through.
HOLD = Rev("a003", "hold", """
    import os, pathlib, time
    marker = os.environ.get("HARNESS_TEST_MARKER")
    if marker and op.get_bind().dialect.name == "postgresql" and not op.get_context().as_sql:
        try:
            with open(marker, "x") as f:
                f.write(str(os.getpid()))
        except FileExistsError:
            pass
        else:
            go, deadline = pathlib.Path(marker + ".go"), time.monotonic() + 60
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
""", "pass")


def hold(dialect: str) -> Rev:
    """:data:`HOLD` on ``dialect``."""
    return Rev(HOLD.revision, HOLD.message, HOLD.upgrade.replace('"postgresql"', repr(dialect)), HOLD.downgrade)


def _docker_kill(container: str) -> None:
    """``docker kill``, and wait until Docker says the container exited."""
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", container], capture_output=True,
                         text=True).stdout.strip() not in ("exited", "dead", ""):
        assert time.monotonic() < deadline, "docker kill did not end the container"
        time.sleep(0.2)


def _idle(pid: int, limit: float = 60) -> None:
    """Until worker ``pid`` waits for its next session on its stdin (its session's work all done)."""
    deadline = time.monotonic() + limit
    while "pipe" not in Path(f"/proc/{pid}/wchan").read_text():
        assert time.monotonic() < deadline, "the worker never finished its session"
        time.sleep(0.1)


@pytest.mark.parametrize("worker, dialect", [("shared", "postgresql"), ("per_session", "postgresql"),
                                             ("shared", "mysql")])
def test_container_killed_between_two_sessions(tmp_path: Path, worker: str, dialect: str) -> None:
    """``shared``: one worker serves both sessions (the app's start-up leaves the database empty); the harness is
    held (SIGSTOP) once the first session's last step has begun, and the container killed once the worker has
    finished that session and waits for the next. ``per_session``: the app's start-up writes to its database, so
    each session gets a worker of its own; the container is killed while the first one exits."""
    project = make_project(tmp_path / "p", good_chain() + ([hold(dialect)] if worker == "shared" else []), GOOD_MODELS)
    if worker == "per_session":
        (project / "app.py").write_text(BETWEEN_SESSIONS)
    marker = tmp_path / "marker"
    reports = {ext: tmp_path / f"report.{ext}" for ext in ("json", "xml", "md", "html")}
    proc = start(project, ["--db", f"sqlite,{dialect}", "--checks", "upgrade,data", "--json", str(reports["json"]),
                           "--junit", str(reports["xml"]), "--markdown", str(reports["md"]), "--html",
                           str(reports["html"])], {**NO_URLS, "HARNESS_TEST_MARKER": str(marker)})
    try:
        wait_for(marker, proc)
        container = container_of(proc.run_id, IMAGES[dialect])
        if worker == "shared":  # the worker is in the upgrade's last step: the harness waits for it
            os.kill(proc.pid, signal.SIGSTOP)
            Path(f"{marker}.go").touch()
            _idle(int(marker.read_text()))  # the upgrade's session is over, the data's not begun
            _docker_kill(container)
        else:  # the upgrade's session is over (its worker is exiting), the data's not begun
            _docker_kill(container)
            Path(f"{marker}.go").touch()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = finish(proc)
    assert proc.returncode == 3, out + err
    assert all(path.stat().st_size for path in reports.values())
    report = json.loads(reports["json"].read_text())
    assert next(d for d in report["databases"] if d["dialect"] == "sqlite")["status"] == "passed"
    database = next(d for d in report["databases"] if d["dialect"] == dialect)
    checks = {c["name"]: c for c in database["checks"]}
    assert database["status"] == "error" and checks["upgrade"]["status"] == "passed", database
    assert database["leftovers"] == []  # the dead container took its scratch databases with it
    data = checks["data"]
    assert (data["status"], data["fault"], data["revision"]) == ("error", "server_gone", None), data
    assert data["message"].startswith(f"{dialect}: the server went away between two sessions, before the data "
                                      "check began (cannot create scratch database mharness_"), data["message"]
    assert "the container had exited with code 137" in data["message"] and NOT_A_VERDICT in data["message"]
    assert "went away between two sessions" in out and "not ok (exit 3)" in out
    assert "| ⚠️ error |" in reports["md"].read_text() and "❌ failed" not in reports["md"].read_text()
    assert run_containers(proc.run_id) == set()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_container_paused_between_two_sessions(tmp_path: Path, dialect: str) -> None:
    """As ``shared`` above, but the container is paused: the next session's fresh scratch database cannot be made
    (a paused server accepts the connection and never answers), and that must not wait for ever."""
    project = make_project(tmp_path / "p", good_chain() + [hold(dialect)], GOOD_MODELS)
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(project, ["--db", dialect, "--checks", "upgrade,data", "--json", str(report)],
                 {**NO_URLS, "HARNESS_TEST_MARKER": str(marker)})
    try:
        wait_for(marker, proc)
        container = container_of(proc.run_id, IMAGES[dialect])
        os.kill(proc.pid, signal.SIGSTOP)
        Path(f"{marker}.go").touch()
        _idle(int(marker.read_text()))  # the upgrade's session is over, the data's not begun
        subprocess.run(["docker", "pause", container], check=True, capture_output=True)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    resumed = time.monotonic()
    out, err = finish(proc, timeout=90)
    assert time.monotonic() - resumed < 20, "a paused server costs seconds, not a connect timeout per statement"
    assert proc.returncode == 3, out + err
    database = json.loads(report.read_text())["databases"][0]
    checks = {c["name"]: c for c in database["checks"]}
    assert database["status"] == "error" and checks["upgrade"]["status"] == "passed", database
    data = checks["data"]
    assert (data["status"], data["fault"], data["revision"]) == ("error", "server_frozen", None), data
    assert data["message"].startswith(f"{dialect}: the server stopped answering between two sessions, before the "
                                      "data check began (cannot create scratch database mharness_"), data["message"]
    assert "the container is paused" in data["message"] and NOT_A_VERDICT in data["message"]
    assert run_containers(proc.run_id) == set(), "the paused container is unpaused and removed"


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_container_paused_mid_step_ends_by_the_step_timeout(slow_project: Path, tmp_path: Path, dialect: str) -> None:
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(slow_project, ["--db", dialect, "--step-timeout", "10", "--json", str(report)],
                 {**NO_URLS, "HARNESS_TEST_MARKER": str(marker)})
    wait_for(Path(f"{marker}.{dialect}"), proc)
    subprocess.run(["docker", "pause", container_of(proc.run_id, IMAGES[dialect])], check=True)
    started = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert run_containers(proc.run_id) == set(), "the paused container must be removed"
    assert proc.returncode == 3, out + err
    assert time.monotonic() - started < 60
    bad = faulted(json.loads(report.read_text()), dialect)
    frozen = [c for c in bad if c["fault"] == "server_frozen"]
    assert frozen and all(c["status"] == "error" for c in bad), bad
    assert "the server stopped answering during" in frozen[0]["message"]
    assert "the step did not finish within 10s" in frozen[0]["message"] and "paused" in frozen[0]["message"]


def test_worker_killed_mid_step(slow_project: Path, tmp_path: Path, server_urls: dict[str, str]) -> None:
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(slow_project, ["--db", "sqlite,postgresql", "--json", str(report)],
                 {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_TEST_MARKER": str(marker)})
    kill_worker_mid_step(marker, "postgresql", proc)
    only_the_killed_session_faulted(proc, report, server_urls)


def only_the_killed_session_faulted(proc: subprocess.Popen, report: Path,
                                    server_urls: dict[str, str]) -> list[dict[str, Any]]:
    """The run ends with exit 3: the slow step's session on PostgreSQL is a ``worker_killed`` fault, every other
    session has its own verdict, no scratch database is left. Returns PostgreSQL's checks."""
    out, err = finish(proc)
    assert proc.returncode == 3, out + err
    written = json.loads(report.read_text())
    bad = faulted(written, "postgresql")
    assert len(bad) == 1 and bad[0]["fault"] == "worker_killed", bad
    assert bad[0]["message"].startswith("postgresql: the worker was killed (signal 9) during upgrade to a003 (slow step)")
    checks = next(d for d in written["databases"] if d["dialect"] == "postgresql")["checks"]
    others = [c for c in checks if c["name"] != bad[0]["name"] and c["status"] not in ("passed", "skipped")]
    assert others == [], "the other sessions go on to their own verdicts"
    assert [n for n in scratch_leftovers(server_urls["postgresql"]) if n.startswith(f"mharness_{proc.run_id}_")] == []
    return checks


def test_fork_server_killed_mid_step(slow_project: Path, tmp_path: Path, server_urls: dict[str, str]) -> None:
    """SIGKILL the fork server (the parent of the worker running the slow step): that worker goes with it, its
    session is an environment fault, and every other session, on a fork server started anew, has its verdict."""
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(slow_project, ["--db", "sqlite,postgresql", "--json", str(report)],
                 {"HARNESS_POSTGRESQL_URL": server_urls["postgresql"], "HARNESS_TEST_MARKER": str(marker)})
    pid_file = Path(f"{marker}.postgresql")
    wait_for(pid_file, proc)
    worker = int(pid_file.read_text())
    server = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert server != proc.pid, "the worker was not forked from a fork server"
    os.kill(server, signal.SIGKILL)
    checks = only_the_killed_session_faulted(proc, report, server_urls)
    assert any(c["status"] == "passed" and c["name"] == "data" for c in checks), checks
    assert not Path(f"/proc/{worker}").exists()


@pytest.mark.parametrize("dialect, fill, size", [("mysql", FILL, "256m"), ("postgresql", FILL_PG, "128m")])
def test_disk_full_is_an_environment_fault_with_the_size_to_raise(tmp_path: Path, dialect: str, fill: Rev,
                                                                  size: str) -> None:
    project = make_project(tmp_path / "p", good_chain() + [fill], GOOD_MODELS)
    proc = run_cli(["run", "--app", "app:create_app", "--db", dialect, "--checks", "upgrade", "--tmpfs-size", size,
                    "--json", str(tmp_path / "report.json")], project, NO_URLS, timeout=300)
    remove_containers(proc.run_id)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    [check] = faulted(json.loads((tmp_path / "report.json").read_text()), dialect)
    assert (check["status"], check["fault"], check["revision"]) == ("error", "disk_full", None), check
    assert check["message"].startswith(f"{dialect}: the server ran out of disk space during the upgrade check, at "
                                       "upgrade to a003 (fill the disk)"), check["message"]
    assert f"a tmpfs of {size}: give it more with --tmpfs-size" in check["message"]
    twice = {"256m": "512m", "128m": "256m"}[size]
    assert f"(HARNESS_TMPFS_SIZE, tmpfs_size in pyproject.toml), e.g. --tmpfs-size {twice};" in check["message"]
    assert NOT_A_VERDICT in check["message"] and run_containers(proc.run_id) == set()


# -- a server given by URL, started (and stopped) by this test --------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


def _wait_until_up(url: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not _answers(url):
        assert time.monotonic() < deadline, "the private server did not start"
        time.sleep(0.5)


@contextlib.contextmanager
def _own_server(dialect: str) -> Iterator[tuple[str, str]]:
    """A server container of this test's own, given to the harness by URL (never the shared servers)."""
    name, port = f"mharness-faults-{secrets.token_hex(3)}", _free_port()
    env, inner, url = {
        "postgresql": ("POSTGRES_PASSWORD=secret", 5432, "postgresql+psycopg2://postgres:secret@127.0.0.1:{}/postgres"),
        "mysql": ("MYSQL_ROOT_PASSWORD=secret", 3306, "mysql+pymysql://root:secret@127.0.0.1:{}/"),
    }[dialect]
    subprocess.run(["docker", "run", "-d", "--name", name, "--label", "org.migration-harness.test-session=1",
                    "-e", env, "-p", f"127.0.0.1:{port}:{inner}", IMAGES[dialect]], check=True, capture_output=True)
    try:
        _wait_until_up(url.format(port), limit=120)
        yield name, url.format(port)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.fixture(scope="module")
def private_server() -> Iterator[tuple[str, str]]:
    """A PostgreSQL server of this test's own, given by URL."""
    with _own_server("postgresql") as server:
        yield server


@pytest.fixture(scope="module")
def private_mysql() -> Iterator[tuple[str, str]]:
    """A MySQL / MariaDB server of this test's own, given by URL."""
    with _own_server("mysql") as server:
        yield server


def _slow_step_begun(project: Path, tmp_path: Path, url: str, env: dict[str, str] | None = None,
                     dialect: str = "postgresql") -> tuple[subprocess.Popen, Path]:
    """A run on the private server, once its slow step has begun; and where its JSON report goes."""
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(project, ["--db", dialect, "--json", str(report)],
                 {f"HARNESS_{dialect.upper()}_URL": url, "HARNESS_TEST_MARKER": str(marker), **(env or {})})
    wait_for(Path(f"{marker}.{dialect}"), proc)
    return proc, report


def test_url_server_that_restarts_is_waited_for_and_the_session_run_again(
        slow_project: Path, tmp_path: Path, private_server: tuple[str, str]) -> None:
    name, url = private_server
    # a loaded CI machine can take more than the default 10 s to restart a container
    proc, report = _slow_step_begun(slow_project, tmp_path, url, {"HARNESS_RECONNECT_WAIT": "90"})
    subprocess.run(["docker", "restart", "-t", "0", name], check=True, capture_output=True)
    out, err = finish(proc)
    assert proc.returncode == 0, out + err  # the verdict, proved on a fresh scratch database
    database = json.loads(report.read_text())["databases"][0]
    assert database["status"] == "passed" and database["leftovers"] == []
    assert database["retries"] and all("run again on a fresh scratch database after postgresql: the " in text
                                       for text in database["retries"]), database["retries"]
    assert "retried:" in out
    assert [n for n in scratch_leftovers(url) if n.startswith(f"mharness_{proc.run_id}_")] == []


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_url_server_that_goes_away_leaves_what_clean_removes(
        slow_project: Path, tmp_path: Path, dialect: str, request: pytest.FixtureRequest) -> None:
    name, url = request.getfixturevalue("private_server") if dialect == "postgresql" else request.getfixturevalue(
        "private_mysql")
    proc, report = _slow_step_begun(slow_project, tmp_path, url, dialect=dialect)
    subprocess.run(["docker", "stop", "-t", "0", name], check=True, capture_output=True)
    try:
        out, err = finish(proc)
    finally:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
    assert proc.returncode == 3, out + err
    database = json.loads(report.read_text())["databases"][0]
    bad = faulted({"databases": [database]}, dialect)
    assert bad and all(c["fault"] == "server_gone" for c in bad), bad
    # refused once the port is gone; MariaDB behind Docker's port proxy may first take the connection and drop it
    assert any(f"the server does not answer ({why})" in bad[0]["message"]
               for why in ("connection refused", "lost connection to mysql server")), bad[0]["message"]
    assert database["leftovers"] and all("scratch database mharness_" in x for x in database["leftovers"])
    assert database["retries"] == []  # waited for (bounded), never run again
    assert f"clean --run-id {proc.run_id}" in out
    _wait_until_up(url)
    assert [n for n in scratch_leftovers(url) if n.startswith(f"mharness_{proc.run_id}_")]
    cleaned = run_cli(["clean", "--run-id", proc.run_id], tmp_path, {**NO_URLS, f"HARNESS_{dialect.upper()}_URL": url})
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert [n for n in scratch_leftovers(url) if n.startswith(f"mharness_{proc.run_id}_")] == []


#: SLOW on PostgreSQL, the first two times it runs: ``<marker>.1``, then ``<marker>.2`` (the worker's pid)
SLOW_TWICE = Rev("a003", "slow step", """
    import os
    marker = os.environ.get("HARNESS_TEST_MARKER")
    if marker and op.get_bind().dialect.name == "postgresql" and not op.get_context().as_sql:
        for n in (1, 2):
            try:
                with open(f"{marker}.{n}", "x") as f:
                    f.write(str(os.getpid()))
            except FileExistsError:
                continue
            op.execute("SELECT pg_sleep(60)")
            break
""", "pass")


def test_url_server_that_restarts_twice_is_retried_once_only(tmp_path: Path,
                                                             private_server: tuple[str, str]) -> None:
    """The retry is bounded: a session the server dropped is run again once, and a second drop is its verdict
    (``error``), said with the retry before it; never a third run."""
    name, url = private_server
    project = make_project(tmp_path / "p", good_chain() + [SLOW_TWICE], GOOD_MODELS)
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(project, ["--db", "postgresql", "--checks", "upgrade", "--json", str(report)],
                 {"HARNESS_POSTGRESQL_URL": url, "HARNESS_TEST_MARKER": str(marker), "HARNESS_RECONNECT_WAIT": "90"})
    try:
        wait_for(Path(f"{marker}.1"), proc)
        subprocess.run(["docker", "restart", "-t", "0", name], check=True, capture_output=True)
        # the second time it stays down until the session is over (its worker gone: the harness drops the
        # scratch database), then comes back: what it kept is dropped once it answers
        wait_for(Path(f"{marker}.2"), proc)
        subprocess.run(["docker", "stop", "-t", "0", name], check=True, capture_output=True)
        worker, deadline = int(Path(f"{marker}.2").read_text()), time.monotonic() + 30
        while Path(f"/proc/{worker}").exists():
            assert time.monotonic() < deadline, "the worker did not exit"
            time.sleep(0.1)
        time.sleep(1)
    finally:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
    try:
        out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        _wait_until_up(url)
    assert proc.returncode == 3, out + err
    database = json.loads(report.read_text())["databases"][0]
    [retry] = database["retries"]
    assert retry.startswith("upgrade: run again on a fresh scratch database after postgresql: the "), retry
    [check] = database["checks"]
    assert (check["status"], check["fault"], check["revision"]) == ("error", "server_gone", None), check
    assert "at upgrade to a003 (slow step)" in check["message"] and NOT_A_VERDICT in check["message"]
    assert "retried:" in out and "not ok (exit 3)" in out
    assert database["leftovers"] == []
    assert [n for n in scratch_leftovers(url) if n.startswith(f"mharness_{proc.run_id}_")] == []


def test_url_server_down_between_two_sessions_is_waited_for_and_the_session_run_again(
        tmp_path: Path, private_server: tuple[str, str]) -> None:
    name, url = private_server
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    (project / "app.py").write_text(BETWEEN_SESSIONS)
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proc = start(project, ["--db", "postgresql", "--checks", "upgrade,data", "--json", str(report)],
                 {"HARNESS_POSTGRESQL_URL": url, "HARNESS_TEST_MARKER": str(marker), "HARNESS_RECONNECT_WAIT": "90"})
    try:
        wait_for(marker, proc)  # the upgrade's session is over, its worker exiting
        subprocess.run(["docker", "stop", "-t", "0", name], check=True, capture_output=True)
        Path(f"{marker}.go").touch()
        worker, deadline = int(marker.read_text()), time.monotonic() + 30
        while Path(f"/proc/{worker}").exists():  # gone: the harness is asking for the next scratch database
            assert time.monotonic() < deadline, "the worker did not exit"
            time.sleep(0.1)
        time.sleep(1)
    finally:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
    out, err = finish(proc)
    assert proc.returncode == 0, out + err  # the data check's verdict, on a fresh scratch database
    database = json.loads(report.read_text())["databases"][0]
    assert database["status"] == "passed" and database["leftovers"] == [], database
    [retry] = database["retries"]
    assert retry.startswith("data: run again on a fresh scratch database after postgresql: the server went away "
                            "between two sessions, before the data check began (cannot create scratch database "), retry
    assert "the server does not answer" in retry
    _wait_until_up(url)
    assert [n for n in scratch_leftovers(url) if n.startswith(f"mharness_{proc.run_id}_")] == []


# -- the Docker engine stops answering ----------------------------------------------------------------------------
class DockerProxy:
    """A unix socket that forwards to the real Docker engine until :meth:`stop` (then nothing answers there)."""

    def __init__(self, path: Path) -> None:
        engine = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        assert engine.startswith("unix://"), f"the proxy forwards to a unix socket, not {engine}"
        self.path, self.target = path, engine[len("unix://"):]
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.listener.close()
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_docker_engine_that_stops_answering_leaves_a_container_clean_removes(slow_project: Path,
                                                                              tmp_path: Path) -> None:
    marker, report = tmp_path / "marker", tmp_path / "report.json"
    proxy = DockerProxy(tmp_path / "docker.sock")
    proc = start(slow_project, ["--db", "postgresql", "--json", str(report)],
                 {**NO_URLS, "HARNESS_TEST_MARKER": str(marker), "HARNESS_TEST_SLEEP": "3",
                  "DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"})
    try:
        wait_for(Path(f"{marker}.postgresql"), proc)
        proxy.stop()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err  # every check ran to its verdict on the server, which still answered
        database = json.loads(report.read_text())["databases"][0]
        assert database["status"] == "passed"
        [leftover] = database["leftovers"]
        assert leftover.startswith("container ") and f"clean --run-id {proc.run_id}" in out
        assert len(run_containers(proc.run_id)) == 1
        cleaned = run_cli(["clean", "--run-id", proc.run_id], tmp_path, NO_URLS)
        assert cleaned.returncode == 0 and "removed container" in cleaned.stdout, cleaned.stdout + cleaned.stderr
        assert run_containers(proc.run_id) == set()
    finally:
        if proc.poll() is None:
            proc.kill()
        remove_containers(proc.run_id)


# -- lint and rehearse --------------------------------------------------------------------------------------------
def test_lint_whose_throwaway_container_dies_gives_no_finding_but_exit_3(slow_project: Path, tmp_path: Path) -> None:
    marker, report = tmp_path / "marker", tmp_path / "lint.json"
    full = cli_env({**NO_URLS, "HARNESS_TEST_MARKER": str(marker)})
    proc = subprocess.Popen([sys.executable, "-m", "harness", "lint", "--app", "app:create_app", "--db", "postgresql",
                             "--json", str(report)], cwd=slow_project, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.run_id = full["HARNESS_RUN_ID"]  # type: ignore[attr-defined]
    wait_for(Path(f"{marker}.postgresql"), proc)
    subprocess.run(["docker", "kill", container_of(proc.run_id, IMAGES["postgresql"])], check=True, capture_output=True)
    out, err = finish(proc)
    assert proc.returncode == 3, out + err
    written = json.loads(report.read_text())
    [database] = written["databases"]
    assert database["status"] == "error" and database["message"].startswith(
        "unavailable: postgresql: the server went away during the observation check, at upgrade to a003"), database
    assert "exited with code 137" in database["message"]
    assert not [f for f in written["findings"] if f["rule"] == "step-fails"]
    assert run_containers(proc.run_id) == set()


@contextlib.contextmanager
def production_at(project: Path, admin: str, revision: str) -> Iterator[tuple[str, sa.Engine]]:
    """A database of this test's own on the server at ``admin``, migrated to ``revision`` (production); its URL
    and an admin engine on that server. Dropped afterwards."""
    name = f"prodtest_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    production = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        env = cli_env({"DATABASE_URL": production, "FLASK_APP": "app:create_app"})
        env["PYTHONPATH"] = str(project)
        subprocess.run([sys.executable, "-m", "flask", "db", "upgrade", revision], cwd=project, env=env,
                       check=True, capture_output=True, timeout=120)
        yield production, engine
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


def start_rehearse(project: Path, production: str, report: Path, env: dict[str, str]) -> subprocess.Popen:
    full = cli_env(env)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "rehearse", "--app", "app:create_app", "--from",
                             production, "--image", IMAGES["postgresql"], "--no-estimate", "--json", str(report)],
                            cwd=project, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.run_id = full["HARNESS_RUN_ID"]  # type: ignore[attr-defined]
    return proc


def still_at(production: str, revision: str) -> bool:
    prod = sa.create_engine(production, poolclass=NullPool)
    try:
        with prod.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == revision
    finally:
        prod.dispose()


def test_rehearse_whose_throwaway_container_dies_is_no_verdict_not_unsafe(
        slow_project: Path, tmp_path: Path, server_urls: dict[str, str]) -> None:
    marker, report = tmp_path / "marker", tmp_path / "rehearse.json"
    with production_at(slow_project, server_urls["postgresql"], "a002") as (production, _):
        proc = start_rehearse(slow_project, production, report, {**NO_URLS, "HARNESS_TEST_MARKER": str(marker)})
        wait_for(Path(f"{marker}.postgresql"), proc)
        subprocess.run(["docker", "kill", container_of(proc.run_id, IMAGES["postgresql"])], check=True,
                       capture_output=True)
        out, err = finish(proc)
        assert proc.returncode == 3, out + err
        written = json.loads(report.read_text())
        assert written["exit_code"] == 3 and "unsafe" not in json.dumps(written), written
        assert "no verdict: postgresql: the server went away" in written["error"] and "a003" in written["error"]
        assert still_at(production, "a002")  # nothing was written in production


def test_rehearse_whose_worker_is_killed_is_no_verdict_not_unsafe(
        slow_project: Path, tmp_path: Path, server_urls: dict[str, str]) -> None:
    marker, report = tmp_path / "marker", tmp_path / "rehearse.json"
    admin = server_urls["postgresql"]
    with production_at(slow_project, admin, "a002") as (production, _):
        # the throwaway server is the test's server too: no container to wait for
        proc = start_rehearse(slow_project, production, report,
                              {**NO_URLS, "HARNESS_POSTGRESQL_URL": admin, "HARNESS_TEST_MARKER": str(marker)})
        kill_worker_mid_step(marker, "postgresql", proc)
        out, err = finish(proc)
        assert proc.returncode == 3, out + err
        written = json.loads(report.read_text())
        assert written["verdict"] == "error" and written["exit_code"] == 3, written
        assert written["error"].startswith("postgresql: no verdict: postgresql: the worker was killed (signal 9) "
                                           "during upgrade to a003 (slow step), in the rehearsal on the copy of "
                                           "production"), written["error"]
        assert "unsafe" not in json.dumps(written) and "stopped before its end" not in written["error"]
        assert still_at(production, "a002")
    assert [n for n in scratch_leftovers(admin) if n.startswith(f"mharness_{proc.run_id}_")] == []


def test_rehearse_whose_production_goes_away_mid_read_gives_no_verdict(tmp_path: Path) -> None:
    """Production is a container of this test's own; a table lock it holds keeps rehearse's read of the rows
    waiting, and the container is killed while that read waits."""
    project = make_project(tmp_path / "p", good_chain(), GOOD_MODELS)
    name, port = f"mharness-faults-prod-{secrets.token_hex(3)}", _free_port()
    subprocess.run(["docker", "run", "-d", "--name", name, "--label", "org.migration-harness.test-session=1",
                    "-e", "POSTGRES_PASSWORD=secret", "-p", f"127.0.0.1:{port}:5432", IMAGES["postgresql"]],
                   check=True, capture_output=True)
    production = f"postgresql+psycopg2://postgres:secret@127.0.0.1:{port}/postgres"
    report = tmp_path / "rehearse.json"
    engine = sa.create_engine(production, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    proc = None
    try:
        _wait_until_up(production)
        env = cli_env({"DATABASE_URL": production, "FLASK_APP": "app:create_app"})
        env["PYTHONPATH"] = str(project)
        subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=project, env=env, check=True,
                       capture_output=True, timeout=120)
        holder = engine.connect()
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        full = cli_env(NO_URLS)
        proc = subprocess.Popen([sys.executable, "-m", "harness", "rehearse", "--app", "app:create_app", "--from",
                                 production, "--image", IMAGES["postgresql"], "--sample-rows", "5", "--no-estimate",
                                 "--json", str(report)], cwd=project, env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        proc.run_id = full["HARNESS_RUN_ID"]  # type: ignore[attr-defined]
        deadline = time.monotonic() + 120
        with engine.connect() as watch:  # until rehearse's read waits for the lock
            while not watch.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                            "AND pid <> pg_backend_pid()").scalar():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "rehearse never read the locked table"
                time.sleep(0.2)
        subprocess.run(["docker", "kill", name], check=True, capture_output=True)
        out, err = finish(proc, timeout=60)
    finally:
        engine.dispose()
        if proc is not None and proc.poll() is None:
            proc.kill()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert proc.returncode == 3, out + err
    [line] = err.strip().splitlines()
    assert line.startswith("migration-harness: error: postgresql: production (postgresql+psycopg2://postgres:***@"
                           f"127.0.0.1:{port}/postgres) stopped answering while it was read"), line
    assert "no verdict" in line and "secret" not in line
    written = json.loads(report.read_text())
    assert written["exit_code"] == 3 and written["verdict"] == "error" and "stopped answering" in written["error"]
    assert run_containers(proc.run_id) == set()


# -- the SQLite file backend ----------------------------------------------------------------------------------------
#: SLOW for SQLite: the first session to reach it writes ``<marker>.sqlite`` (the worker's pid) and sleeps in Python
SLOW_SQLITE = Rev("a003", "slow step", """
    import os, time
    marker = os.environ.get("HARNESS_TEST_MARKER")
    if marker and not op.get_context().as_sql:
        try:
            with open(f"{marker}.sqlite", "x") as f:
                f.write(str(os.getpid()))
        except FileExistsError:
            pass
        else:
            time.sleep(60)
""", "pass")

#: Some 40 MB of rows in SQLite: more than the 8 MB tmpfs the test gives the run as its temporary directory.
FILL_SQLITE = Rev("a003", "fill the disk", """
    op.create_table("big", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("t", sa.Text()))
    op.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
               "INSERT INTO big (t) SELECT hex(randomblob(1000)) FROM n")
""", 'op.drop_table("big")')


def test_sqlite_worker_killed_mid_step(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", good_chain() + [SLOW_SQLITE], GOOD_MODELS)
    marker, report, temp = tmp_path / "marker", tmp_path / "report.json", tmp_path / "tmp"
    temp.mkdir()
    proc = start(project, ["--db", "sqlite", "--json", str(report)],
                 {"HARNESS_TEST_MARKER": str(marker), "TMPDIR": str(temp)})
    kill_worker_mid_step(marker, "sqlite", proc)
    out, err = finish(proc)
    assert proc.returncode == 3, out + err
    database = json.loads(report.read_text())["databases"][0]
    [bad] = faulted({"databases": [database]}, "sqlite")
    assert (bad["fault"], bad["revision"]) == ("worker_killed", None), bad
    assert bad["message"].startswith("sqlite: the worker was killed (signal 9) during upgrade to a003 (slow step)")
    assert NOT_A_VERDICT in bad["message"]
    others = [c for c in database["checks"] if c["name"] != bad["name"] and c["status"] not in ("passed", "skipped")]
    assert others == [], "the other sessions go on to their own verdicts"
    assert "worker was killed" in out and "not ok (exit 3)" in out
    # its scratch files and directories are gone (what is left is the registry of runs, which it left)
    assert [p.name for p in temp.iterdir()] == ["mharness_runs"] and not list((temp / "mharness_runs").iterdir())


def test_sqlite_disk_full_is_an_environment_fault(tmp_path: Path) -> None:
    """The run's temporary directory (where SQLite's scratch files live) is a tmpfs of 8 MB, mounted in a mount
    namespace of the run's own (``unshare``: nothing on the machine sees it, and it goes with the run)."""
    project = make_project(tmp_path / "p", good_chain() + [FILL_SQLITE], GOOD_MODELS)
    temp, report, listing = tmp_path / "tmp", tmp_path / "report.json", tmp_path / "left"
    temp.mkdir()
    full = cli_env({"TMPDIR": str(temp)})
    script = ('mount -t tmpfs -o size=8m tmpfs "$TMPDIR" && "$@"; code=$?; ls -A "$TMPDIR" > "$LISTING"; '
              'exit $code')
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--mount", "--map-root-user"]
    proc = subprocess.run([*unshare, "sh", "-c", script, "sh", sys.executable, "-m", "harness", "run", "--app",
                           "app:create_app", "--db", "sqlite", "--checks", "upgrade", "--json", str(report)],
                          cwd=project, env={**full, "LISTING": str(listing)}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    [check] = faulted(json.loads(report.read_text()), "sqlite")
    assert (check["status"], check["fault"], check["revision"]) == ("error", "disk_full", None), check
    assert check["message"].startswith("sqlite: the server ran out of disk space during the upgrade check, at "
                                       "upgrade to a003 (fill the disk) (database or disk is full)"), check["message"]
    assert "free space in the temporary directory (or point TMPDIR at a larger one)" in check["message"]
    assert NOT_A_VERDICT in check["message"]
    assert listing.read_text().split() == ["mharness_runs"]  # its scratch file was removed from the full tmpfs
