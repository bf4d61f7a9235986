"""Benchmark of issue #9: the harness on long synthetic chains, against the floor and against pytest-alembic.

    python benchmarks/chain_bench.py [--sizes 50,100,200] [--repeat 1] [--output BENCHMARKS-chain.md]
    python benchmarks/chain_bench.py --quick          # N=10 only: a smoke test of this script
    python benchmarks/chain_bench.py --since-only --sizes 100 --repeat 3 --compare /tmp/old-checkout \
        --postgresql-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres --mysql-url mysql+pymysql://root@127.0.0.1:3306/

For each chain length N, a synthetic Flask-Migrate app with N revisions is generated (benchmarks/chain_app.py) and
measured three ways, one after another, on the same chain:

(a) the floor, per database: for PostgreSQL and MySQL the time from starting a throwaway container until it accepts
    connections, plus ONE process running ``upgrade head``, ``downgrade base``, ``upgrade head`` (Flask-Migrate's
    command API in the app context) against it; for SQLite that process alone. The floor of a run is the slowest
    database's value.
(b) the harness: ``python -m harness run --app app:create_app --json report.json``, every check, three databases,
    containers it starts itself; wall time, each database's and each check's ``duration_s`` from the report, and
    the peak resident memory of its processes (largest single process, from wait4's rusage, and the whole tree
    parent + workers, the sum of their PSS polled from /proc).
(c) pytest-alembic's four default tests on each database one after another (the sum of the three pytest
    processes' wall times), against one container per dialect started once by this script and kept for all N;
    every test gets a fresh database. pytest-alembic runs from its own venv (--pytest-venv, created if missing).
(d) ``run --since base`` (issue #17): the app's directory made a git repository whose commit ``base`` lacks the
    chain's last two revisions, every check on those two, on the containers of (c) by URL; against (e) one process
    running ``upgrade head`` on a fresh database of each, the slowest; and (f) ``run --since all`` (the commit
    holding every revision): the commonest pre-push, nothing new.

``--since-only``: (d), (e) and (f) alone, on the servers of ``--postgresql-url`` / ``--mysql-url`` (else containers), with
``--compare DIR`` (a directory holding another checkout's ``harness/``) measured interleaved with this one, each
repeat's load average printed.

Targets printed and written: (d) <= 1.5 x (e); (b) <= 1.5 x (a); (c) >= 3 x (b); (b at N=200) <= 2.0 x (b at N=100); peak RSS <= 150
MiB. Medians over --repeat runs. Containers come from HARNESS_POSTGRESQL_IMAGE / HARNESS_MYSQL_IMAGE (default
postgres:16 / mysql:8.4); without a registry set TESTCONTAINERS_RYUK_DISABLED=true too. This script's own containers
carry the label org.migration-harness.bench=1 and are always removed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the harness, for its container settings
from chain_app import write_app

REPO = Path(__file__).resolve().parent.parent
DIALECTS = ("sqlite", "postgresql", "mysql")
CHECKS = ("single_head", "upgrade", "schema_matches_models", "no_pending_autogenerate", "downgrade",
          "leaves_no_trace", "stairway", "data")
PYTEST_TESTS = ("test_single_head_revision", "test_upgrade", "test_model_definitions_match_ddl",
                "test_up_down_consistency")
BENCH_LABEL = {"org.migration-harness.bench": "1"}
PYTEST_PACKAGES = ["pytest==9.1.1", "pytest-alembic", "flask", "flask-sqlalchemy", "flask-migrate",
                   "psycopg2-binary", "pymysql"]
TARGETS = {"b_over_a": 1.5, "c_over_b": 3.0, "scaling": 2.0, "rss_mib": 150.0, "since": 1.5}


#: the harness as a command; ``-P`` (Python 3.11+): the working directory is not put first on ``sys.path``, so that
#: in this checkout (the example app's directory) the harness given by PYTHONPATH runs, not the checkout's
HARNESS = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "harness"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- processes -------------------------------------------------------------------------------------------------

def _tree_pss_kib(root: int) -> int:
    """Memory of ``root`` and all its descendants now (KiB): the sum of their proportional set sizes (PSS), from
    /proc. Not of their RSS: pages shared after a fork (a worker between fork and exec) would count twice."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:  # exited meanwhile
            pass
    return total


def machine_busy_s() -> float:
    """CPU time the whole machine has spent working since boot (s), every core and every process (the database
    servers' included), from /proc/stat: user, nice, system, irq and softirq; not idle, iowait or steal (the
    hypervisor's time for other machines)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def run_process(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float,
                poll_rss: bool = False) -> dict[str, Any]:
    """Run ``argv``; return its wall time, exit code, output, the largest resident set of any process of its tree
    (wait4's rusage: the process itself and every descendant it waited for) and, with ``poll_rss``, the peak of
    the tree's summed PSS, sampled every 0.25 s; ``machine_cpu``: the busy CPU time of the whole machine meanwhile
    (:func:`machine_busy_s`: the servers' work too, and whatever else ran)."""
    with tempfile.TemporaryFile("w+") as out:
        busy = machine_busy_s()
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        peak_tree = [0]
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.25):
                peak_tree[0] = max(peak_tree[0], _tree_pss_kib(proc.pid))

        poller = threading.Thread(target=poll, daemon=True) if poll_rss else None
        if poller:
            poller.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted: do not leave the child running (the harness cleans up on SIGTERM)
            proc.terminate()
            proc.wait()
            raise
        finally:
            timer.cancel()
            done.set()
        wall = time.monotonic() - started
        busy = machine_busy_s() - busy
        proc.returncode = os.waitstatus_to_exitcode(status)
        if poller:
            poller.join()
        out.seek(0)
        output = out.read()
    return {"wall": wall, "rc": proc.returncode, "output": output, "max_rss_kib": usage.ru_maxrss,
            "tree_pss_kib": peak_tree[0], "cpu": usage.ru_utime + usage.ru_stime, "machine_cpu": busy}


def checked(result: dict[str, Any], what: str) -> dict[str, Any]:
    if result["rc"] != 0:
        raise SystemExit(f"{what}: exit {result['rc']}\n{result['output'][-6000:]}")
    return result


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HARNESS_POSTGRESQL_URL", "HARNESS_MYSQL_URL", "DATABASE_URL", "SQLALCHEMY_DATABASE_URI")}
    env.setdefault("HARNESS_POSTGRESQL_IMAGE", "postgres:16")
    env.setdefault("HARNESS_MYSQL_IMAGE", "mysql:8.4")
    return env


# --- containers -------------------------------------------------------------------------------------------------

def make_container(dialect: str, env: dict[str, str]) -> Any:
    if dialect == "postgresql":
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # older testcontainers 4.x
            from testcontainers.postgres import PostgresContainer
        container = PostgresContainer(env["HARNESS_POSTGRESQL_IMAGE"], username="bench", password="bench-pw",
                                      dbname="postgres", driver="psycopg2")
    else:
        try:
            from testcontainers.community.mysql import MySqlContainer
        except ImportError:
            from testcontainers.mysql import MySqlContainer
        container = MySqlContainer(env["HARNESS_MYSQL_IMAGE"], dialect="pymysql", username="root",
                                   password="bench-pw", dbname="harness")
    # The same server settings as the harness's own throwaway containers (no durability, data on tmpfs): the
    # floor is the cost of the DDL on the same server, not of fsync.
    from harness.backends import get_backend
    from harness.versions import with_tmpfs

    backend = get_backend(dialect)
    kwargs: dict[str, Any] = {"labels": BENCH_LABEL}
    for path in backend.fast_tmpfs:
        with_tmpfs(container, path, kwargs)
    if backend.fast_command:
        container.with_command(backend.fast_command)
    return container.with_kwargs(**kwargs)


def wait_connectable(url: str, deadline_s: float = 120.0) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.DBAPIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        engine.dispose()


@contextmanager
def started_container(dialect: str, env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """Start a labelled container; yield (URL, seconds from start until it accepted a connection); remove it."""
    container = make_container(dialect, env)
    started = time.monotonic()
    try:
        container.start()
        url = container.get_connection_url()
        wait_connectable(url)
        ready = time.monotonic() - started
        yield url, ready
    finally:
        try:
            container.stop()
        except Exception as exc:  # noqa: BLE001 - already gone: nothing left to remove
            log(f"removing {dialect} container: {exc}")


# --- the three measurements ---------------------------------------------------------------------------------

def measure_floor(app_dir: Path, env: dict[str, str], timeout: float) -> dict[str, dict[str, float]]:
    floors: dict[str, dict[str, float]] = {}
    for dialect in DIALECTS:
        if dialect == "sqlite":
            with tempfile.TemporaryDirectory(prefix="mh-bench-floor-") as tmp:
                run = checked(run_process([sys.executable, "floor.py"], cwd=app_dir, timeout=timeout,
                                          env={**env, "DATABASE_URL": f"sqlite:///{tmp}/floor.sqlite"}),
                              "floor sqlite")
            floors[dialect] = {"container": 0.0, "process": run["wall"], "total": run["wall"]}
        else:
            with started_container(dialect, env) as (url, ready):
                run = checked(run_process([sys.executable, "floor.py"], cwd=app_dir, timeout=timeout,
                                          env={**env, "DATABASE_URL": url}), f"floor {dialect}")
            floors[dialect] = {"container": ready, "process": run["wall"], "total": ready + run["wall"]}
        log(f"  (a) {dialect}: {floors[dialect]['total']:.1f}s (container {floors[dialect]['container']:.1f}s, "
            f"process {floors[dialect]['process']:.1f}s)")
    return floors


def snapshot_harness(dest: Path) -> dict[str, str]:
    """Copy the checkout's harness/ package to ``dest`` (the harness then runs from there, so that edits made to
    the checkout while the benchmark runs do not mix versions within one run); return what was copied: the commit,
    whether harness/ had uncommitted changes, and a hash of the copied sources."""
    import hashlib
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(REPO / "harness", dest / "harness", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted((dest / "harness").rglob("*.py")):
        digest.update(path.relative_to(dest).as_posix().encode() + b"\0" + path.read_bytes())

    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": "yes" if git("status", "--porcelain", "--", "harness") else "no",
            "sha256": digest.hexdigest()[:12], "path": str(dest)}


def measure_harness(app_dir: Path, env: dict[str, str], timeout: float, harness_root: Path) -> dict[str, Any]:
    report_path = app_dir / "report.json"
    report_path.unlink(missing_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(harness_root), env.get("PYTHONPATH", "")) if p)
    run = checked(run_process([*HARNESS, "run", "--app", "app:create_app",
                               "--json", str(report_path)], cwd=app_dir, timeout=timeout, poll_rss=True,
                              env={**env, "PYTHONPATH": pythonpath}), "harness")
    report = json.loads(report_path.read_text())
    databases = {}
    for database in report["databases"]:
        assert database["status"] == "passed", database
        databases[database["dialect"]] = {
            "duration": database["duration_s"], "server": database["server_version"],
            "checks": {check["name"]: check["duration_s"] for check in database["checks"]}}
    log(f"  (b) harness: {run['wall']:.1f}s (" + ", ".join(f"{d} {v['duration']:.1f}s" for d, v in databases.items())
        + f"), peak RSS {run['max_rss_kib'] / 1024:.0f} MiB one process, {run['tree_pss_kib'] / 1024:.0f} MiB "
          "tree (PSS)")
    return {"wall": run["wall"], "databases": databases, "max_rss_kib": run["max_rss_kib"],
            "tree_pss_kib": run["tree_pss_kib"], "machine_cpu": run["machine_cpu"]}


UPGRADE_PY = """\
import flask_migrate

from app import create_app

app = create_app()
with app.app_context():
    flask_migrate.upgrade()
"""


def _fresh_database(admin_url: str, name: str, drop: bool = False) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            if not drop:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return engine.url.set(database=name).render_as_string(hide_password=False)


def measure_since(app_dir: Path, env: dict[str, str], timeout: float, harness_root: Path,
                  admin_urls: dict[str, str]) -> dict[str, Any]:
    """(d) the pre-push run: the app's directory a git repository whose commit ``base`` lacks the chain's last two
    revisions, ``run --since base`` on the servers already running (by URL), and (f) ``run --since all`` (nothing
    new), against (e) one process running ``upgrade head`` (base to head) on a fresh database of each, the
    slowest."""
    def git(*argv: str) -> None:
        subprocess.run(["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *argv], cwd=app_dir,
                       check=True, capture_output=True)

    if not (app_dir / ".git").exists():
        newest = sorted((app_dir / "migrations" / "versions").glob("r*.py"))[-2:]
        git("init", "-q")
        git("add", "-A")
        git("rm", "-q", "--cached", *[str(p.relative_to(app_dir)) for p in newest])
        git("commit", "-q", "-m", "all but the last two revisions")
        git("tag", "base")
        git("add", "-A")
        git("commit", "-q", "-m", "the last two")
        git("tag", "all")
    (app_dir / "upgrade.py").write_text(UPGRADE_PY)
    upgrade: dict[str, float] = {}
    for dialect in DIALECTS:
        with tempfile.TemporaryDirectory(prefix="mh-bench-up-") as tmp:
            url = (f"sqlite:///{tmp}/up.sqlite" if dialect == "sqlite"
                   else _fresh_database(admin_urls[dialect], "mh_bench_upgrade"))
            run = checked(run_process([sys.executable, "upgrade.py"], cwd=app_dir, timeout=timeout,
                                      env={**env, "DATABASE_URL": url}), f"upgrade {dialect}")
            if dialect != "sqlite":
                _fresh_database(admin_urls[dialect], "mh_bench_upgrade", drop=True)
        upgrade[dialect] = run["wall"]
    report_path = app_dir / "report-since.json"
    report_path.unlink(missing_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(harness_root), env.get("PYTHONPATH", "")) if p)
    urls = {"HARNESS_POSTGRESQL_URL": admin_urls["postgresql"], "HARNESS_MYSQL_URL": admin_urls["mysql"]}
    run = checked(run_process([*HARNESS, "run", "--app", "app:create_app", "--since", "base",
                               "--json", str(report_path)], cwd=app_dir, timeout=timeout,
                              env={**env, **urls, "PYTHONPATH": pythonpath}), "harness --since")
    report = json.loads(report_path.read_text())
    assert len(report["since"]["checked"]) == 2, report["since"]
    # the revisions that exist at the ref, applied once per database without checks (steps of no check)
    applied = {d["dialect"]: sum(step["duration_s"] for step in d["steps"] if not step.get("check"))
               for d in report["databases"]}
    # (f) the commonest pre-push: no revision added or changed since the ref
    unchanged = checked(run_process([*HARNESS, "run", "--app", "app:create_app", "--since", "all",
                                     "--json", str(report_path)], cwd=app_dir, timeout=timeout,
                                    env={**env, **urls, "PYTHONPATH": pythonpath}), "harness --since, nothing new")
    assert json.loads(report_path.read_text())["since"]["checked"] == []
    log(f"  (d) harness --since (2 new revisions, servers by URL): {run['wall']:.1f}s, machine CPU "
        f"{run['machine_cpu']:.1f}s, the old revisions applied in " + ", ".join(f"{d} {t:.1f}s" for d, t in applied.items())
        + f"; (f) nothing new: {unchanged['wall']:.1f}s; (e) upgrade head: "
        + ", ".join(f"{d} {t:.1f}s" for d, t in upgrade.items()))
    return {"wall": run["wall"], "unchanged": unchanged["wall"], "upgrade": upgrade,
            "upgrade_slowest": max(upgrade.values()), "machine_cpu": run["machine_cpu"], "applied": applied}


def ensure_pytest_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", ("import pytest, pytest_alembic, flask_migrate, psycopg2, pymysql; "
                                 "assert pytest.__version__ == '9.1.1', pytest.__version__")]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    log(f"creating the pytest-alembic venv {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PYTEST_PACKAGES], check=True)
    subprocess.run(probe, check=True)
    return python


def measure_pytest_alembic(app_dir: Path, python: Path, admin_urls: dict[str, str], env: dict[str, str],
                           timeout: float) -> dict[str, float]:
    times = {}
    for dialect in DIALECTS:
        run = checked(run_process([str(python), "-m", "pytest", "--test-alembic", "-q", "tests"], cwd=app_dir,
                                  timeout=timeout, env={**env, "PYTHONPATH": str(app_dir),
                                                        "MH_BENCH_ADMIN_URL": admin_urls.get(dialect, "")}),
                      f"pytest-alembic {dialect}")
        if "4 passed" not in run["output"]:
            raise SystemExit(f"pytest-alembic {dialect}: expected 4 passed tests\n{run['output'][-4000:]}")
        times[dialect] = run["wall"]
        log(f"  (c) pytest-alembic {dialect}: {run['wall']:.1f}s")
    return times


# --- results ----------------------------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats of one N."""
    floor = {d: {k: median([r["floor"][d][k] for r in runs]) for k in ("container", "process", "total")}
             for d in DIALECTS}
    harness_dbs = {}
    for d in DIALECTS:
        harness_dbs[d] = {
            "duration": median([r["harness"]["databases"][d]["duration"] for r in runs]),
            "server": runs[0]["harness"]["databases"][d]["server"],
            "checks": {c: median([r["harness"]["databases"][d]["checks"].get(c, 0.0) for r in runs]) for c in CHECKS}}
    s = {
        "floor": floor,
        "floor_total": median([max(r["floor"][d]["total"] for d in DIALECTS) for r in runs]),
        "harness_wall": median([r["harness"]["wall"] for r in runs]),
        "harness_dbs": harness_dbs,
        "max_rss_mib": max(r["harness"]["max_rss_kib"] for r in runs) / 1024,
        "tree_pss_mib": max(r["harness"]["tree_pss_kib"] for r in runs) / 1024,
        "pytest": {d: median([r["pytest"][d] for r in runs]) for d in DIALECTS},
        "pytest_total": median([sum(r["pytest"].values()) for r in runs]),
        "counts": runs[0]["counts"],
        "load": [min(r["load"][0] for r in runs), max(r["load"][1] for r in runs)],
    }
    s["since_wall"] = median([r["since"]["wall"] for r in runs])
    s["upgrade"] = {d: median([r["since"]["upgrade"][d] for r in runs]) for d in DIALECTS}
    s["upgrade_slowest"] = median([r["since"]["upgrade_slowest"] for r in runs])
    s["d_over_e"] = s["since_wall"] / s["upgrade_slowest"]
    # what stands in the way: the least wall time of the work on this machine's cores (the servers' CPU included),
    # and the part of (d) that is the old revisions' one apply on the slowest database
    cores = os.cpu_count() or 1
    s["harness_least"] = median([r["harness"]["machine_cpu"] for r in runs]) / cores
    s["since_least"] = median([r["since"]["machine_cpu"] for r in runs]) / cores
    s["since_applied"] = median([max(r["since"]["applied"].values()) for r in runs])
    s["b_over_a"] = s["harness_wall"] / s["floor_total"]
    s["c_over_b"] = s["pytest_total"] / s["harness_wall"]
    return s


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        return ""


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(results: dict[int, dict[str, Any]], args: argparse.Namespace, env: dict[str, str],
           source: dict[str, str]) -> tuple[str, list[str]]:
    ratios: list[str] = []
    lines = [
        "## Long chains (issue #9)",
        "",
        (f"`python benchmarks/chain_bench.py --sizes {','.join(map(str, results))} --repeat {args.repeat}` on "
         f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')}; medians of {args.repeat} run(s). Machine: "
         f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()} "
         f"{platform.machine()} ({_os_name()}). "
         f"Images: `{env['HARNESS_POSTGRESQL_IMAGE']}`, `{env['HARNESS_MYSQL_IMAGE']}`. Harness: "
         + ("the live checkout (edits made meanwhile apply to later runs)." if args.live_harness else
            f"commit {source['commit']}, uncommitted changes in harness/: {source['dirty']} (sources sha256 "
            f"{source['sha256']}), copied once at the start so that every N runs the same code.")),
        "",
        ("The chain (benchmarks/chain_app.py): per block of 4 revisions one `create table`, then three of "
         "`add column`, `add index`, `add FK`, `alter column` in `op.batch_alter_table` (VARCHAR(40) to (120)) and "
         "a data `UPDATE`, rotating; every downgrade the exact inverse; about N/4 tables; the models match head."),
        "",
        ("- (a) floor, per database: container start until it accepts a connection, plus one process running "
         "`upgrade head`, `downgrade base`, `upgrade head` (SQLite: the process alone). The floor is the slowest "
         "database's."),
        ("- (b) harness: `python -m harness run --app app:create_app --json report.json`, all checks, three "
         "databases, containers it starts itself: the command's wall time, and each database's and check's "
         "`duration_s` from its report (when the harness runs databases at once these overlap, and add up to "
         "more than the wall time)."),
        ("- (c) pytest-alembic 0.13 (pytest 9.1.1): its four default tests per database, one pytest process per "
         "database one after another, against containers already running; every test gets a fresh database. The "
         "sum of the three pytest processes' wall times."),
        "",
    ]
    for n, s in results.items():
        counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items())
        lines += [f"### N = {n} ({s['counts']['create_table']} tables; {counts})", "",
                  "| | sqlite | postgresql | mysql | whole |", "| --- | --- | --- | --- | --- |"]
        f = s["floor"]
        lines.append("| (a) container ready (s) | – | " + " | ".join(f"{f[d]['container']:.1f}" for d in DIALECTS[1:])
                     + " | |")
        lines.append("| (a) up/down/up process (s) | " + " | ".join(f"{f[d]['process']:.1f}" for d in DIALECTS)
                     + " | |")
        lines.append("| **(a) floor (s)** | " + " | ".join(f"{f[d]['total']:.1f}" for d in DIALECTS)
                     + f" | **{s['floor_total']:.1f}** (slowest) |")
        hd = s["harness_dbs"]
        lines.append("| **(b) harness (s)** | " + " | ".join(f"{hd[d]['duration']:.1f}" for d in DIALECTS)
                     + f" | **{s['harness_wall']:.1f}** (command wall time) |")
        for c in CHECKS:
            lines.append(f"| (b) `{c}` (s) | " + " | ".join(f"{hd[d]['checks'][c]:.2f}" for d in DIALECTS) + " | "
                         f"{sum(hd[d]['checks'][c] for d in DIALECTS):.1f} |")
        lines.append(f"| (b) machine CPU ÷ {os.cpu_count()} cores (s): the least wall time of its work here, "
                     f"the containers' servers included | | | | {s['harness_least']:.1f} (the run kept the machine "
                     f"{s['harness_least'] / s['harness_wall']:.0%} busy) |")
        other = {d: hd[d]["duration"] - sum(hd[d]["checks"].values()) for d in DIALECTS}
        lines.append("| (b) database minus its checks (s): provisioning, worker start-ups (< 0: sessions overlap) | "
                     + " | ".join(f"{other[d]:.1f}" for d in DIALECTS) + f" | {sum(other.values()):.1f} |")
        lines.append(f"| **(d) harness `--since base`, 2 new revisions, servers by URL (s)** | | | | "
                     f"**{s['since_wall']:.1f}** (command wall time) |")
        lines.append(f"| (d) of which the revisions at the ref, applied once (s), slowest database | | | | "
                     f"{s['since_applied']:.1f} |")
        lines.append(f"| (d) machine CPU ÷ {os.cpu_count()} cores (s): the least wall time of its work here | | | | "
                     f"{s['since_least']:.1f} |")
        lines.append("| (e) one `upgrade head` process, fresh database (s) | "
                     + " | ".join(f"{s['upgrade'][d]:.1f}" for d in DIALECTS) + f" | {s['upgrade_slowest']:.1f} (slowest) |")
        lines.append("| **(c) pytest-alembic (s)** | " + " | ".join(f"{s['pytest'][d]:.1f}" for d in DIALECTS)
                     + f" | **{s['pytest_total']:.1f}** (sum) |")
        lines += ["", (f"Servers: {', '.join(hd[d]['server'] for d in DIALECTS)}. Peak resident memory of the "
                       f"harness: {s['max_rss_mib']:.0f} MiB the largest process (parent or a worker), "
                       f"{s['tree_pss_mib']:.0f} MiB parent + workers together (sum of PSS). Load average (1 min) "
                       f"at the start and end of the runs: {s['load'][0]:.1f}, {s['load'][1]:.1f} on {os.cpu_count()} cores."),
                  ""]
    lines += ["### Against the targets", "", "| ratio | N | value | target | |", "| --- | --- | --- | --- | --- |"]
    for n, s in results.items():
        rows = [
            ("(b) / (a)", f"{s['b_over_a']:.2f}", f"≤ {TARGETS['b_over_a']}", s["b_over_a"] <= TARGETS["b_over_a"]),
            ("(c) / (b)", f"{s['c_over_b']:.2f}", f"≥ {TARGETS['c_over_b']}", s["c_over_b"] >= TARGETS["c_over_b"]),
            ("(d) / (e): --since against one upgrade", f"{s['d_over_e']:.2f}", f"≤ {TARGETS['since']}",
             s["d_over_e"] <= TARGETS["since"]),
            ("peak RSS, largest process (MiB)", f"{s['max_rss_mib']:.0f}", f"≤ {TARGETS['rss_mib']:.0f}",
             s["max_rss_mib"] <= TARGETS["rss_mib"]),
            ("peak memory, parent + workers, PSS sum (MiB)", f"{s['tree_pss_mib']:.0f}",
             f"≤ {TARGETS['rss_mib']:.0f}", s["tree_pss_mib"] <= TARGETS["rss_mib"]),
        ]
        for name, value, target, ok in rows:
            lines.append(f"| {name} | {n} | {value} | {target} | {verdict(ok)} |")
            ratios.append(f"N={n:<4} {name:<44} {value:>7}  target {target:<6} {verdict(ok).strip('*')}")
    sizes = sorted(results)
    for smaller, larger in itertools.pairwise(sizes):
        value = results[larger]["harness_wall"] / results[smaller]["harness_wall"]
        if (smaller, larger) == (100, 200):
            ok, target = value <= TARGETS["scaling"], f"≤ {TARGETS['scaling']}"
            lines.append(f"| (b at N=200) / (b at N=100) | 200 | {value:.2f} | {target} | {verdict(ok)} |")
            ratios.append(f"N=200  (b at N=200)/(b at N=100)          {value:>7.2f}  target {target:<6} "
                          f"{verdict(ok).strip('*')}")
        else:
            lines.append(f"| (b at N={larger}) / (b at N={smaller}) | {larger} | {value:.2f} | "
                         f"(linear: {larger / smaller:.1f}) | |")
            ratios.append(f"N={larger:<4} (b at N={larger})/(b at N={smaller}) {value:>14.2f}  (linear would be "
                          f"{larger / smaller:.1f})")
    if (100, 200) not in itertools.pairwise(sizes):
        lines.append("| (b at N=200) / (b at N=100) | – | not measured (needs `--sizes` with 100 and 200) | ≤ 2.0 | |")
    lines.append("")
    return "\n".join(lines), ratios


def since_only(args: argparse.Namespace, sizes: list[int], env: dict[str, str]) -> None:
    """(d) against (e) alone, this checkout's harness and ``--compare``'s interleaved, repeat by repeat."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mh-since-bench-"))
    roots = {"this": snapshot_harness(workdir / "harness-src")["path"]}
    if args.compare:
        roots["compare"] = args.compare
    with ExitStack() as stack:
        urls = {"postgresql": args.postgresql_url, "mysql": args.mysql_url}
        for dialect in ("postgresql", "mysql"):
            if not urls[dialect]:
                urls[dialect] = stack.enter_context(started_container(dialect, env))[0]
        for n in sizes:
            app_dir = workdir / f"chain_{n}"
            write_app(app_dir, n)
            ratios: dict[str, list[float]] = {name: [] for name in roots}
            unchanged: dict[str, list[float]] = {name: [] for name in roots}
            for repeat in range(args.repeat):
                for name, root in (roots.items() if repeat % 2 == 0 else reversed(roots.items())):
                    load = os.getloadavg()[0]
                    got = measure_since(app_dir, env, args.timeout, Path(root), urls)
                    ratios[name].append(got["wall"] / got["upgrade_slowest"])
                    unchanged[name].append(got["unchanged"] / got["upgrade_slowest"])
                    log(f"N={n} run {repeat + 1} {name}: (d) {got['wall']:.1f}s / (e) {got['upgrade_slowest']:.1f}s "
                        f"= {ratios[name][-1]:.2f}; (f) {got['unchanged']:.1f}s = {unchanged[name][-1]:.2f}; "
                        f"load {load:.1f} -> {os.getloadavg()[0]:.1f}")
            for name, values in ratios.items():
                log(f"N={n} {name}: (d)/(e) median {median(values):.2f} (target <= {TARGETS['since']}); "
                    f"(f)/(e) median {median(unchanged[name]):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100,200", help="chain lengths, comma-separated")
    parser.add_argument("--quick", action="store_true", help="N=10 only: a smoke test of this script")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output", default="BENCHMARKS-chain.md", help="markdown file to write the results to")
    parser.add_argument("--workdir", default=None, help="where to generate the apps (default: a temp directory)")
    parser.add_argument("--pytest-venv", default="/tmp/mh-bench-venv", help="venv for pytest-alembic (created "
                        "if missing)")
    parser.add_argument("--timeout", type=float, default=3600, help="per process, seconds")
    parser.add_argument("--live-harness", action="store_true", help="run the checkout's harness/ itself, not a "
                        "copy taken at the start (edits made meanwhile then apply to later runs)")
    parser.add_argument("--since-only", action="store_true", help="(d), (e) and (f) only, printed (nothing written)")
    parser.add_argument("--compare", default=None, help="with --since-only: a directory holding another harness/ "
                        "(e.g. a checkout of main), measured interleaved with this one")
    parser.add_argument("--postgresql-url", default=None, help="with --since-only: a server's admin URL (no container)")
    parser.add_argument("--mysql-url", default=None, help="with --since-only: a server's admin URL (no container)")
    parser.add_argument("--raw", default=None, help="also write every run's measurements to this JSON file")
    args = parser.parse_args()
    sizes = [10] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]

    # SIGTERM ends the run like Ctrl-C, so the finally blocks remove this script's containers.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    env = base_env()
    if args.since_only:
        since_only(args, sizes, env)
        return
    python = ensure_pytest_venv(Path(args.pytest_venv))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mh-chain-bench-"))
    if args.live_harness:
        source = {"commit": "live checkout", "dirty": "?", "sha256": "-", "path": str(REPO)}
    else:
        source = snapshot_harness(workdir / "harness-src")
    log(f"apps in {workdir}; sizes {sizes}, repeat {args.repeat}; harness {source}")

    results: dict[int, dict[str, Any]] = {}
    raw: dict[int, list[dict[str, Any]]] = {}
    with started_container("postgresql", env) as (pg_url, _), started_container("mysql", env) as (my_url, _):
        admin_urls = {"postgresql": pg_url, "mysql": my_url}  # for (c) only, kept for every N
        for n in sizes:
            app_dir = workdir / f"chain_{n}"
            counts = write_app(app_dir, n)
            runs = []
            for repeat in range(args.repeat):
                log(f"N={n}, run {repeat + 1}/{args.repeat}")
                load_before = os.getloadavg()[0]
                runs.append({"counts": counts,
                             "floor": measure_floor(app_dir, env, args.timeout),
                             "harness": measure_harness(app_dir, env, args.timeout, Path(source["path"])),
                             "pytest": measure_pytest_alembic(app_dir, python, admin_urls, env, args.timeout),
                             "since": measure_since(app_dir, env, args.timeout, Path(source["path"]), admin_urls)})
                runs[-1]["load"] = [load_before, os.getloadavg()[0]]
            results[n] = summarise(runs)
            raw[n] = runs
            if args.raw:
                Path(args.raw).write_text(json.dumps({"harness": source, "raw": raw, "summary": results}, indent=1))
            s = results[n]
            log(f"N={n}: (a) {s['floor_total']:.1f}s  (b) {s['harness_wall']:.1f}s  (c) {s['pytest_total']:.1f}s  "
                f"(b)/(a) {s['b_over_a']:.2f}  (c)/(b) {s['c_over_b']:.2f}  RSS {s['max_rss_mib']:.0f}/"
                f"{s['tree_pss_mib']:.0f} MiB")
            text, ratios = render(results, args, env, source)  # written after every N, so a long run leaves something
            Path(args.output).write_text(text)

    print()
    for line in ratios:
        print(line)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
