"""Benchmark of issue #17 on real apps: the harness against the floor, side by side in one run.

    python benchmarks/real_apps_bench.py [--apps microblog,ctfd] [--repeat 3] [--compare REF]
                                         [--root /tmp/speed-apps] [--output BENCHMARKS.md]

For each public app of docs/real-apps.md (``microblog``, ``ctfd``: at its commit, in a virtualenv of its own with
its own pins, made under --root on the first run from GitHub and the app's requirements.txt), and for ``example``
(this repository's app) and ``chain100`` (the synthetic chain of BENCHMARKS.md, 100 revisions) in this
interpreter, on the servers given by URL (HARNESS_POSTGRESQL_URL / HARNESS_MYSQL_URL, default the local
PostgreSQL and MariaDB; only scratch databases ``mharness_bench*`` and the harness's own are made there, and
dropped):

(a) the floor, per database: three processes one after another on a fresh database, ``flask db upgrade``,
    ``flask db downgrade base``, ``flask db upgrade`` (their wall times added up; a command that fails, as some
    apps' do on some databases, counts with the time it took). The floor of a run is the slowest database's.
(b) the harness: ``python -m harness run --app ... --python <the app's venv>``, every check, three databases, the
    same servers by URL; wall time, each database's ``duration_s`` and the time in its checks (the sum of the
    checks' ``duration_s``), and the peak memory of parent + workers (the sum of their PSS, polled from /proc).
(c) with ``--compare REF``: (b) with the harness of the git ref REF as well (``git archive``), and whether every
    verdict is the same.

The measurements of one app are interleaved (floor, harness, harness at REF; then in reverse order on the next
repeat) so that a machine shared with other work loads them alike; the 1-minute load average before each one is
recorded. Medians over --repeat. The table goes to stdout and, with --output, into that file between the markers
``<!-- real-apps:start -->`` and ``<!-- real-apps:end -->`` (added at the end the first time).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chain_bench import HARNESS, REPO, log, run_process, snapshot_harness  # noqa: E402

DIALECTS = ("sqlite", "postgresql", "mysql")
DEFAULT_URLS = {"postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
                "mysql": "mysql+pymysql://root@127.0.0.1:3306/mysql"}
START, END = "<!-- real-apps:start -->", "<!-- real-apps:end -->"

CTFD_FACTORY = '''\
"""Only the database and Flask-Migrate of CTFd (its own create_app migrates at start-up): for the benchmark."""
import os

from flask import Flask
from flask_migrate import Migrate

from CTFd.models import db


def create_app():
    app = Flask("CTFd")
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///ctfd.db")
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    db.init_app(app)
    Migrate(app, db, directory=os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations"))
    return app
'''


@dataclass(frozen=True)
class App:
    """A public app as docs/real-apps.md runs it."""

    name: str
    repo: str
    commit: str
    app: str  # --app, and FLASK_APP for the floor
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # written into the checkout (a factory of our own)
    extra: tuple[str, ...] = ()  # drivers its pins lack, installed beside them
    chain: int = 0  # a synthetic chain of this many revisions (benchmarks/chain_app.py), in this interpreter


APPS = {
    "microblog": App("microblog", "miguelgrinberg/microblog", "a975ef6", "microblog.py",
                     {"SECRET_KEY": "bench", "REDIS_URL": "redis://127.0.0.1:1/0"}, extra=("pymysql",)),
    "ctfd": App("ctfd", "CTFd/CTFd", "91ced62", "mharness_ctfd:create_app",
                files={"mharness_ctfd.py": CTFD_FACTORY}, extra=("psycopg2-binary",)),
    # this repository's example app and the synthetic chain of BENCHMARKS.md, in this interpreter
    "example": App("example", "", "", "app:create_app"),
    "chain100": App("chain100", "", "", "app:create_app", chain=100),
}


def prepare(app: App, root: Path) -> tuple[Path, Path]:
    """The app's checkout and its venv's Python, made the first time (clone at the commit, its own pins)."""
    if app.name == "example":
        return REPO, Path(sys.executable)
    if app.chain:
        from chain_app import write_app

        if not (root / app.name / "migrations").exists():
            write_app(root / app.name, app.chain)
        return root / app.name, Path(sys.executable)
    checkout, venv = root / app.name, root / f"{app.name}-venv"
    if not checkout.exists():
        subprocess.run(["git", "clone", "-q", f"https://github.com/{app.repo}", str(checkout)], check=True)
        subprocess.run(["git", "-C", str(checkout), "checkout", "-q", app.commit], check=True)
    for name, text in app.files.items():
        (checkout / name).write_text(text)
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(checkout / "requirements.txt"),
                        *app.extra], check=True)
    return checkout, python


def _admin(url: str) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def scratch_url(dialect: str, urls: dict[str, str], workdir: Path) -> str:
    """A fresh scratch database (``mharness_bench<random>``) of ``dialect``: its URL."""
    name = f"mharness_bench{secrets.token_hex(4)}"
    if dialect == "sqlite":
        return f"sqlite:///{workdir / (name + '.db')}"
    import sqlalchemy as sa

    engine = _admin(urls[dialect])
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return sa.engine.make_url(urls[dialect]).set(database=name).render_as_string(hide_password=False)


def drop(dialect: str, url: str, urls: dict[str, str]) -> None:
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database or ""
    if dialect == "sqlite":
        Path(name).unlink(missing_ok=True)
        return
    assert name.startswith("mharness_bench"), name
    engine = _admin(urls[dialect])
    with engine.connect() as conn:
        force = " WITH (FORCE)" if dialect == "postgresql" else ""
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
    engine.dispose()


def measure_floor(app: App, checkout: Path, python: Path, urls: dict[str, str], env: dict[str, str],
                  workdir: Path) -> dict[str, Any]:
    """(a): per database, the three flask processes' wall times added up, and their exit codes."""
    flask = python.parent / "flask"
    per: dict[str, Any] = {}
    for dialect in DIALECTS:
        url = scratch_url(dialect, urls, workdir)
        try:
            total, cpu, busy, codes = 0.0, 0.0, 0.0, []
            for argv in (["db", "upgrade"], ["db", "downgrade", "base"], ["db", "upgrade"]):
                run = run_process([str(flask), *argv], cwd=checkout, timeout=600,
                                  env={**env, **app.env, "FLASK_APP": app.app, "DATABASE_URL": url})
                total += run["wall"]
                cpu += run["cpu"]
                busy += run["machine_cpu"]
                codes.append(run["rc"])
            per[dialect] = {"wall": total, "cpu": cpu, "machine_cpu": busy, "rc": codes}
        finally:
            drop(dialect, url, urls)
    slowest = max(per, key=lambda d: per[d]["wall"])
    log(f"  (a) floor {app.name}: " + ", ".join(f"{d} {v['wall']:.1f}s (exit {'/'.join(map(str, v['rc']))})"
                                                for d, v in per.items()))
    return {"wall": per[slowest]["wall"], "slowest": slowest, "databases": per,
            "cpu": sum(v["cpu"] for v in per.values())}


def measure_harness(app: App, checkout: Path, python: Path, urls: dict[str, str], env: dict[str, str],
                    harness_root: Path, label: str) -> dict[str, Any]:
    """(b): the whole run; per database its duration and the time in its checks; every verdict."""
    report = checkout / f"mharness-bench-{label}.json"
    report.unlink(missing_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(harness_root), env.get("PYTHONPATH", "")) if p)
    run = run_process([*HARNESS, "run", "--app", app.app, "--python", str(python),
                       "--json", str(report), "-q"], cwd=checkout, timeout=1800, poll_rss=True,
                      env={**env, **app.env, "PYTHONPATH": pythonpath, "HARNESS_POSTGRESQL_URL": urls["postgresql"],
                           "HARNESS_MYSQL_URL": urls["mysql"]})
    if run["rc"] not in (0, 1) or not report.exists():
        raise SystemExit(f"harness ({label}) on {app.name}: exit {run['rc']}\n{run['output'][-6000:]}")
    data = json.loads(report.read_text())
    report.unlink()
    databases = {d["dialect"]: {"duration": d["duration_s"],
                                "checks": sum(c.get("duration_s") or 0.0 for c in d["checks"]),
                                # the migration steps run (one listed under two checks counted once), their time
                                "steps": sum(1 for s in d.get("steps", []) if not s.get("shared_with")),
                                "steps_s": sum(s["duration_s"] for s in d.get("steps", [])
                                               if not s.get("shared_with"))}
                 for d in data["databases"]}
    verdicts = {f"{d['dialect']}:{c['name']}": f"{c['status']}@{c.get('revision') or ''}"
                for d in data["databases"] for c in d["checks"]}
    log(f"  (b) harness {label} {app.name}: {run['wall']:.1f}s (" + ", ".join(
        f"{d} {v['duration']:.1f}s, checks {v['checks']:.1f}s" for d, v in databases.items())
        + f"), {run['tree_pss_kib'] / 1024:.0f} MiB PSS")
    return {"wall": run["wall"], "databases": databases, "verdicts": verdicts, "pss_kib": run["tree_pss_kib"],
            "cpu": run["cpu"], "machine_cpu": run["machine_cpu"]}


def exported(ref: str, dest: Path) -> dict[str, str]:
    """The harness/ package of the git ref ``ref``, under ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "harness"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True, text=True)
    return {"commit": commit.stdout.strip(), "path": str(dest)}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(results: dict[str, dict[str, list[dict[str, Any]]]], args: argparse.Namespace, current: dict[str, str],
           before: dict[str, str] | None, loads: list[float], started: str) -> str:
    compare = before is not None
    lines = ["## Real apps, floor against harness (issue #17)", "",
             f"`python benchmarks/real_apps_bench.py --apps {','.join(results)} --repeat {args.repeat}"
             + (f" --compare {args.compare}" if compare else "") + f"` on {started}; medians of {args.repeat} "
             f"interleaved run(s). Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{platform.system()} {platform.machine()}; servers by URL (the machine's PostgreSQL and MariaDB, "
             "scratch databases only). Harness: commit " + current["commit"]
             + (f" (uncommitted changes in harness/: {current['dirty']})" if "dirty" in current else "")
             + (f"; before: commit {before['commit']}" if compare else "") + ". The machine is shared with other "
             f"engineers: 1-minute load average before the measurements {min(loads):.1f}–{max(loads):.1f} on "
             f"{os.cpu_count()} cores (median {median(loads):.1f}).", "",
             "(a) floor: the slowest database's `flask db upgrade` + `flask db downgrade base` + `flask db upgrade` "
             "(three processes, a fresh database). (b) harness: every check, three databases, wall time of the "
             "command. Checks: the time in the checks themselves per database (sqlite / postgresql / mysql). CPU: "
             "user + system time of the processes (the harness's parent and workers; the floor's nine `flask` "
             "processes), not the servers': less sensitive to the machine's load than wall time.", ""]
    head = ("| app (revisions) | (a) floor (s) | (b) harness (s) | (b) / (a) | checks per database (s) | peak PSS (MiB) "
            "| CPU (s): floor, 3 databases / harness |")
    rule = "| --- | --- | --- | --- | --- | --- | --- |"
    if compare:
        head += " harness before (s) | before / (a) | CPU before (s) | verdicts the same |"
        rule += " --- | --- | --- | --- |"
    lines += [head, rule]
    for name, runs in results.items():
        floor = median([r["wall"] for r in runs["floor"]])
        after = median([r["wall"] for r in runs["after"]])
        checks = " / ".join(f"{median([r['databases'][d]['checks'] for r in runs['after']]):.1f}" for d in DIALECTS)
        pss = max(r["pss_kib"] for r in runs["after"]) / 1024
        slowest = runs["floor"][0]["slowest"]
        codes = {d: v["rc"] for d, v in runs["floor"][0]["databases"].items()}
        failing = ", ".join(f"{d} exit {'/'.join(map(str, c))}" for d, c in codes.items() if any(c))
        label = f"{name} ({runs['revisions']})"
        cpu = (f"{median([r['cpu'] for r in runs['floor']]):.1f} / {median([r['cpu'] for r in runs['after']]):.1f}")
        row = (f"| {label} | {floor:.1f} ({slowest}{'; ' + failing if failing else ''}) | {after:.1f} | "
               f"**{after / floor:.2f}** | {checks} | {pss:.0f} | {cpu} |")
        if compare:
            prior = median([r["wall"] for r in runs["before"]])
            same = all(r["verdicts"] == runs["after"][0]["verdicts"] for r in runs["after"] + runs["before"])
            row += (f" {prior:.1f} | {prior / floor:.2f} | {median([r['cpu'] for r in runs['before']]):.1f} | "
                    f"{'yes' if same else '**no**'} |")
        lines.append(row)
    lines += work_table(results)
    lines += ["", "Each measurement, in the order taken (load average before it):", ""]
    for name, runs in results.items():
        for kind in ("floor", "after", "before"):
            for r in runs.get(kind, []):
                lines.append(f"- {name} {kind}: {r['wall']:.1f} s, CPU {r['cpu']:.1f} s (load {r['load']:.1f})")
    return "\n".join(lines) + "\n"


def work_table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """What each side's work costs the machine, the servers included: what stands between (b) and 1.5 × (a).

    The machine's CPU time during a run (every core, the database servers' processes too), divided by its cores, is
    the least wall time that work could take here, however it were scheduled; against the run's wall time it says
    how busy the run kept the machine. Steps: the migration steps each database ran (the floor: three passes over
    the chain) and their time. Medians of each run's own figures."""
    cores = os.cpu_count() or 1
    lines = ["", f"What the work costs the machine ({cores} cores; the servers' processes included; medians). "
             f"Machine CPU: the CPU time all processes spent during the command. Busy: machine CPU ÷ ({cores} × "
             "wall time). Least: (b)'s machine CPU ÷ the cores, the least wall time of that work on this machine "
             "whatever the order, against (a). Steps: the migration steps run per database (sqlite / postgresql / "
             "mysql) and their time (s); (a) runs three passes on one database.", "",
             "| app | (a) machine CPU (s) | (b) machine CPU (s) | (b) busy | least (b) / (a) | (b) / (a) "
             "| (a) steps | (b) steps | (b) time in steps (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, runs in results.items():
        floor = median([r["wall"] for r in runs["floor"]])
        floor_busy = median([r["databases"][r["slowest"]]["machine_cpu"] for r in runs["floor"]])
        busy = median([r["machine_cpu"] for r in runs["after"]])
        kept = median([r["machine_cpu"] / (cores * r["wall"]) for r in runs["after"]])
        least = median([r["machine_cpu"] / cores for r in runs["after"]]) / floor
        after = median([r["wall"] for r in runs["after"]])
        steps = " / ".join(f"{median([r['databases'][d]['steps'] for r in runs['after']]):.0f}" for d in DIALECTS)
        steps_s = " / ".join(f"{median([r['databases'][d]['steps_s'] for r in runs['after']]):.1f}" for d in DIALECTS)
        lines.append(f"| {name} | {floor_busy:.1f} | {busy:.1f} | {kept:.0%} | **{least:.2f}** | {after / floor:.2f} "
                     f"| {3 * runs['revisions']} | {steps} | {steps_s} |")
    return lines


def write_section(path: Path, text: str, start: str = START, end: str = END) -> None:
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text}{end}\n"
    if start in old and end in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)


def servers_and_env() -> tuple[dict[str, str], dict[str, str]]:
    """The servers' URLs (HARNESS_<DIALECT>_URL, else the machine's), and this environment without the variables
    that would point an app or the harness elsewhere."""
    urls = {d: os.environ.get(f"HARNESS_{d.upper()}_URL") or u for d, u in DEFAULT_URLS.items()}
    env = {k: v for k, v in os.environ.items() if k not in (
        "HARNESS_POSTGRESQL_URL", "HARNESS_MYSQL_URL", "DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "FLASK_APP")}
    return urls, env


def parse_args(doc: str, apps: str, compare: dict[str, Any]) -> argparse.Namespace:
    """The options the real-app benchmarks share (``compare``: ``--compare``'s help, and whether it is required)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", default=apps)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", type=Path, default=Path("/tmp/speed-apps"))
    parser.add_argument("--compare", **compare)
    parser.add_argument("--output", type=Path, help="write the table into this Markdown file (e.g. BENCHMARKS.md)")
    return parser.parse_args()


def main() -> None:
    args = parse_args(__doc__ or "", "microblog,ctfd",
                      {"help": "also run the harness of this git ref (e.g. main), interleaved"})
    urls, env = servers_and_env()
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    workdir = Path(tempfile.mkdtemp(prefix="mharness_bench_"))
    current = snapshot_harness(workdir / "after")
    before = exported(args.compare, workdir / "before") if args.compare else None
    results: dict[str, dict[str, Any]] = {}
    loads: list[float] = []
    try:
        for name in args.apps.split(","):
            app = APPS[name]
            checkout, python = prepare(app, args.root)
            revisions = len(list((checkout / "migrations" / "versions").glob("*.py")))
            runs: dict[str, Any] = {"floor": [], "after": [], "before": [], "revisions": revisions}
            kinds = ["floor", "after"] + (["before"] if before else [])
            for repeat in range(args.repeat):
                for kind in (kinds if repeat % 2 == 0 else kinds[::-1]):
                    load = os.getloadavg()[0]
                    loads.append(load)
                    if kind == "floor":
                        result = measure_floor(app, checkout, python, urls, env, workdir)
                    else:
                        root = Path(current["path"] if kind == "after" else before["path"])  # type: ignore[index]
                        result = measure_harness(app, checkout, python, urls, env, root, kind)
                    runs[kind].append({**result, "load": load})
            results[name] = runs
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = render(results, args, current, before, loads, started)
    print(text)
    if args.output:
        write_section(args.output, text)


if __name__ == "__main__":
    main()
