"""Benchmark of issue #17 item 4: ``lint`` on the lean path (one worker per database renders the offline SQL and
then observes), against the harness of another git ref, side by side in one run.

    python benchmarks/lint_bench.py --compare REF [--apps example,microblog,ctfd] [--repeat 3]
                                    [--root /tmp/speed-apps] [--output BENCHMARKS.md]

Each app is the one of ``real_apps_bench.py`` (at its commit, in a virtualenv of its own with its own pins, made
under --root the first time; ``example`` is this repository's app), linted whole (every revision from base),
three databases, the servers given by URL (HARNESS_POSTGRESQL_URL / HARNESS_MYSQL_URL, default the local
PostgreSQL and MariaDB: only the harness's scratch databases are made there). For each app, interleaved (then in
reverse order on the next repeat): the harness of this checkout and the harness of REF. Recorded: wall time, CPU
(user + system of the parent and its workers), the peak PSS of parent + workers, and whether the two gave the same
findings (rule, database, revision, severity, line). Medians over --repeat; the table goes to stdout and, with
--output, into that file between ``<!-- lint-bench:start -->`` and ``<!-- lint-bench:end -->``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chain_bench import HARNESS, log, run_process, snapshot_harness  # noqa: E402
from real_apps_bench import (APPS, exported, median, parse_args, prepare, servers_and_env,  # noqa: E402
                             write_section)

START, END = "<!-- lint-bench:start -->", "<!-- lint-bench:end -->"


def measure(name: str, checkout: Path, python: Path, urls: dict[str, str], env: dict[str, str],
            harness_root: Path, label: str) -> dict[str, Any]:
    app = APPS[name]
    report = checkout / f"mharness-lint-bench-{label}.json"
    report.unlink(missing_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(harness_root), env.get("PYTHONPATH", "")) if p)
    run = run_process([*HARNESS, "lint", "--app", app.app, "--python", str(python),
                       "--db", "sqlite,postgresql,mysql", "--json", str(report)], cwd=checkout, timeout=1800,
                      poll_rss=True, env={**env, **app.env, "PYTHONPATH": pythonpath,
                                          "HARNESS_POSTGRESQL_URL": urls["postgresql"],
                                          "HARNESS_MYSQL_URL": urls["mysql"]})
    if run["rc"] not in (0, 1) or not report.exists():
        raise SystemExit(f"lint ({label}) on {name}: exit {run['rc']}\n{run['output'][-6000:]}")
    data = json.loads(report.read_text())
    report.unlink()
    findings = sorted((f["rule"], f["database"], f["revision"], f["severity"], f.get("line") or 0)
                      for f in data["findings"])
    log(f"  lint {label} {name}: {run['wall']:.1f}s, CPU {run['cpu']:.1f}s, {len(findings)} findings, "
        f"{run['tree_pss_kib'] / 1024:.0f} MiB PSS")
    return {"wall": run["wall"], "cpu": run["cpu"], "pss_kib": run["tree_pss_kib"], "findings": findings,
            "revisions": len(data["revisions"]), "load": os.getloadavg()[0]}


def render(results: dict[str, dict[str, list[dict[str, Any]]]], args: argparse.Namespace, current: dict[str, str],
           before: dict[str, str], loads: list[float], started: str) -> str:
    lines = ["## `lint` on the lean path (issue #17)", "",
             f"`python benchmarks/lint_bench.py --apps {','.join(results)} --repeat {args.repeat} --compare "
             f"{args.compare}` on {started}; medians of {args.repeat} interleaved run(s). Machine: {os.cpu_count()} "
             f"cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}; servers by URL "
             f"(scratch databases only). Harness: commit {current['commit']} (uncommitted changes in harness/: "
             f"{current['dirty']}); before: commit {before['commit']}. 1-minute load average before the "
             f"measurements {min(loads):.1f}–{max(loads):.1f} (median {median(loads):.1f}).", "",
             "Every revision linted, three databases. CPU: user + system time of the harness's parent and workers.",
             "", "| app (revisions) | lint before (s) | lint now (s) | now / before | CPU before / now (s) "
             "| peak PSS before / now (MiB) | findings the same |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, runs in results.items():
        prior, now = median([r["wall"] for r in runs["before"]]), median([r["wall"] for r in runs["after"]])
        same = all(r["findings"] == runs["after"][0]["findings"] for r in runs["after"] + runs["before"])
        lines.append(f"| {name} ({runs['after'][0]['revisions']}) | {prior:.1f} | {now:.1f} | **{now / prior:.2f}** | "
                     f"{median([r['cpu'] for r in runs['before']]):.1f} / {median([r['cpu'] for r in runs['after']]):.1f} | "
                     f"{max(r['pss_kib'] for r in runs['before']) / 1024:.0f} / "
                     f"{max(r['pss_kib'] for r in runs['after']) / 1024:.0f} | "
                     f"{'yes' if same else '**no**'} ({len(runs['after'][0]['findings'])}) |")
    lines += ["", "Each measurement, in the order taken (load average after it):", ""]
    for name, runs in results.items():
        for kind in ("after", "before"):
            lines += [f"- {name} {kind}: {r['wall']:.1f} s, CPU {r['cpu']:.1f} s (load {r['load']:.1f})"
                      for r in runs[kind]]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args(__doc__ or "", "example,microblog,ctfd",
                      {"required": True, "help": "the harness of this git ref, interleaved (e.g. main~3)"})
    urls, env = servers_and_env()
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    workdir = Path(tempfile.mkdtemp(prefix="mharness_lintbench_"))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    loads: list[float] = []
    try:
        current = snapshot_harness(workdir / "after")
        before = exported(args.compare, workdir / "before")
        for name in args.apps.split(","):
            checkout, python = prepare(APPS[name], args.root)
            runs: dict[str, list[dict[str, Any]]] = {"after": [], "before": []}
            for repeat in range(args.repeat):
                order = [("after", current), ("before", before)]
                for label, harness in order if repeat % 2 == 0 else order[::-1]:
                    loads.append(os.getloadavg()[0])
                    runs[label].append(measure(name, checkout, python, urls, env, Path(harness["path"]), label))
            results[name] = runs
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the two harness copies (the apps stay under --root)
    text = render(results, args, current, before, loads, started)
    print(text)
    if args.output:
        write_section(args.output, text, START, END)


if __name__ == "__main__":
    main()
