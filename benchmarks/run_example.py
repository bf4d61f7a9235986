"""Time `migration-harness run` on the example app, per database and backend, and write BENCHMARKS.md.

    python benchmarks/run_example.py [--repeat 3] [--output BENCHMARKS.md]

Backends measured: SQLite (temporary file), PostgreSQL and MySQL in containers the harness starts (images from
HARNESS_POSTGRESQL_IMAGE / HARNESS_MYSQL_IMAGE), and, when HARNESS_BENCH_POSTGRESQL_URL / HARNESS_BENCH_MYSQL_URL
are set, existing servers by URL. For each: the whole command's wall time, the database's own duration, each
check's duration (medians over the repeats), and the peak resident memory of any harness process.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_once(db: str, env: dict[str, str]) -> tuple[float, dict, int]:
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "harness", "run", "--app", "app:create_app", "--db", db,
                               "--json", str(report_path)], cwd=REPO, env={**os.environ, **env},
                              capture_output=True, text=True)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{db}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        report = json.loads(report_path.read_text())
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, report["databases"][0], peak_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    args = parser.parse_args()

    cases = [("sqlite", "file", {}),
             ("postgresql", "container", {"HARNESS_POSTGRESQL_URL": ""}),
             ("mysql", "container", {"HARNESS_MYSQL_URL": ""})]
    for dialect in ("postgresql", "mysql"):
        url = os.environ.get(f"HARNESS_BENCH_{dialect.upper()}_URL")
        if url:
            cases.append((dialect, "url", {f"HARNESS_{dialect.upper()}_URL": url}))

    rows, check_rows, peak = [], {}, 0
    for dialect, backend, env in cases:
        walls, durations, checks = [], [], {}
        for _ in range(args.repeat):
            wall, database, peak_kib = run_once(dialect, env)
            assert database["backend"] == backend, database
            walls.append(wall)
            durations.append(database["duration_s"])
            for check in database["checks"]:
                checks.setdefault(check["name"], []).append(check["duration_s"])
            peak = max(peak, peak_kib)
            version = database["server_version"]
        rows.append(f"| {dialect} | {backend} | {version} | {statistics.median(walls):.1f} | "
                    f"{statistics.median(durations):.1f} |")
        check_rows[f"{dialect} ({backend})"] = {n: statistics.median(v) for n, v in checks.items()}
        print(rows[-1], flush=True)

    names = list(next(iter(check_rows.values())))
    lines = [
        "# Benchmarks",
        "",
        f"`python benchmarks/run_example.py --repeat {args.repeat}` on {dt.date.today().isoformat()}: the example app "
        f"(10 revisions, 6 tables), every check, one database per run; medians of {args.repeat} runs. Machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}.",
        "",
        "## Whole run per database",
        "",
        "| database | backend | server | command wall time (s) | database duration (s) |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        "The command's wall time includes Python start-up, the preflight (the app loaded once on a throwaway "
        "SQLite file) and, for containers, starting and removing the container; the database duration starts "
        "when the harness begins to provide the database.",
        "",
        "## Per check (s)",
        "",
        "| database | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
        *[f"| {case} | " + " | ".join(f"{checks.get(n, 0):.2f}" for n in names) + " |"
          for case, checks in check_rows.items()],
        "",
        "Each check's time includes nothing of the worker start-up (about 1 s per worker session: three sessions "
        "per database, for the chain, the stairway and the data run).",
        "",
        f"## Memory\n\nPeak resident set of any harness process (parent or worker): {peak / 1024:.0f} MiB.",
        "",
    ]
    Path(args.output).write_text("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
