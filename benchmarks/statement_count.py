"""Count the statements the harness's workers send, for this checkout and (``--compare REF``) a git ref.

    python benchmarks/statement_count.py [--compare REF] [--db postgresql,mysql] [--checks stairway,data]
                                         [--chain 100] [--root /tmp/speed-apps]

Wall time on a shared 2-core machine moves by 10-20 % between runs of one commit; the number of statements a run
sends to its database does not. For each database (by URL: HARNESS_POSTGRESQL_URL / HARNESS_MYSQL_URL, default the
local servers; only the harness's own scratch databases are made there, and dropped) this runs ``python -m harness
run`` on the synthetic chain of BENCHMARKS.md (``benchmarks/chain_app.py``, made under --root the first time) with a
``sitecustomize`` on the workers' path that counts SQLAlchemy's ``before_cursor_execute`` events per process (the
migrations' own statements included) and writes them when the process exits. It prints, per database and harness,
the total of the processes that sent any, and the statements sent most often.
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chain_bench import snapshot_harness  # noqa: E402
from real_apps_bench import exported, servers_and_env  # noqa: E402

#: installed as sitecustomize.py on the workers' path: runs in the fork server (whose forks inherit the listener
#: and start from zero) and in every worker started as a process of its own
RECORDER = '''
import atexit, collections, os
if os.environ.get("STATEMENT_COUNT_DIR"):
    try:
        import sqlalchemy
        _counts = collections.Counter()

        def _count(conn, cursor, statement, parameters, context, executemany):
            _counts[" ".join(statement.split())[:70]] += 1

        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", _count)

        def _write():
            if _counts:
                with open(os.path.join(os.environ["STATEMENT_COUNT_DIR"], str(os.getpid())), "w") as out:
                    out.writelines(f"{n}\\t{s}\\n" for s, n in _counts.items())

        atexit.register(_write)
        os.register_at_fork(after_in_child=_counts.clear)
    except Exception:
        pass
'''


def count(harness_root: Path, app_dir: Path, dialect: str, checks: str, urls: dict[str, str],
          env: dict[str, str]) -> collections.Counter[str]:
    """Run the harness once on ``dialect`` and add up what its processes counted."""
    with tempfile.TemporaryDirectory(prefix="mharness_count_") as tmp:
        site, out = Path(tmp, "site"), Path(tmp, "out")
        site.mkdir()
        out.mkdir()
        (site / "sitecustomize.py").write_text(RECORDER)
        run_env = {**env, "PYTHONPATH": os.pathsep.join((str(site), str(harness_root))),
                   "STATEMENT_COUNT_DIR": str(out), "HARNESS_POSTGRESQL_URL": urls["postgresql"],
                   "HARNESS_MYSQL_URL": urls["mysql"]}
        done = subprocess.run([sys.executable, "-m", "harness", "run", "--app", "app:create_app", "--db", dialect,
                               "--checks", checks, "-q"], cwd=app_dir, env=run_env, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise SystemExit(f"harness at {harness_root} on {dialect}: exit {done.returncode}\n{done.stdout[-3000:]}"
                             f"{done.stderr[-3000:]}")
        total: collections.Counter[str] = collections.Counter()
        for path in out.iterdir():
            for line in path.read_text().splitlines():
                number, _, statement = line.partition("\t")
                total[statement] += int(number)
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", help="also count with the harness of this git ref (e.g. main~3)")
    parser.add_argument("--db", default="postgresql,mysql")
    parser.add_argument("--checks", default="stairway,data")
    parser.add_argument("--chain", type=int, default=100, help="revisions of the synthetic chain")
    parser.add_argument("--root", type=Path, default=Path("/tmp/speed-apps"))
    parser.add_argument("--top", type=int, default=8, help="how many of the commonest statements to show")
    args = parser.parse_args()
    from chain_app import write_app

    app_dir = args.root / f"chain{args.chain}"
    if not (app_dir / "migrations").exists():
        write_app(app_dir, args.chain)
    urls, env = servers_and_env()
    with tempfile.TemporaryDirectory(prefix="mharness_count_") as tmp:
        harnesses = {"this checkout": snapshot_harness(Path(tmp, "now"))}
        if args.compare:
            harnesses[args.compare] = exported(args.compare, Path(tmp, "before"))
        print(f"the {args.chain}-revision chain, --checks {args.checks}: statements the workers sent")
        for dialect in args.db.split(","):
            for label, harness in harnesses.items():
                counted = count(Path(harness["path"]), app_dir, dialect, args.checks, urls, env)
                print(f"{dialect:<11} {label} ({harness['commit']}): {sum(counted.values())}")
                for statement, number in counted.most_common(args.top):
                    print(f"    {number:>6}  {statement}")


if __name__ == "__main__":
    main()
