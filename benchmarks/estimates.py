"""How far off are the lock-duration estimates? Estimate each kind of step from its times at 10k and 100k rows,
then run the same step on a real table of 1 M rows and compare.

    python benchmarks/estimates.py [--db postgresql,mysql] [--sizes 10000,100000] [--target 1000000] [--repeat 2]

A small Flask-Migrate project (tests/projects.py's app factory) with one table ``items`` (id, an INTEGER ``n``, a
VARCHAR ``title``, a nullable ``note``) and four pending steps, each a kind of step the estimates must handle:

- ``add column default``: ``ADD COLUMN flag INTEGER NOT NULL DEFAULT 0`` (PostgreSQL 11+: catalogue only;
  MariaDB: INSTANT): must come out *constant*;
- ``int to bigint``: ``ALTER COLUMN n TYPE BIGINT`` (PostgreSQL: a rewrite under ACCESS EXCLUSIVE; MariaDB:
  ALGORITHM=COPY);
- ``create index``: ``CREATE INDEX ix_items_title`` (PostgreSQL: SHARE; MariaDB: INPLACE);
- ``add check``: ``ADD CONSTRAINT ck CHECK (n > 0)`` (PostgreSQL: a scan under ACCESS EXCLUSIVE; MariaDB: COPY).

The estimate is what ``lint --sizes-from`` / ``rehearse`` compute: the harness's ``estimate`` worker mode runs the
pending steps on scratch databases whose tables were filled to each of ``--sizes`` rows, and the per-row fit is
evaluated at the rows the 1 M table really held. The measurement is the same worker mode at ``--target`` rows: the
app's real migration steps, run by its env.py on a real table. Scratch databases are ``mharness_bench<random>_<n>``
on the servers given by HARNESS_POSTGRESQL_URL / HARNESS_MYSQL_URL (default: the local PostgreSQL 15 and MariaDB),
created and dropped by the harness. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from projects import Rev, make_project  # noqa: E402

from harness.backends import get_backend  # noqa: E402
from harness.backends.base import TableSize  # noqa: E402
from harness.config import DatabaseSettings, build_config  # noqa: E402
from harness.estimate.fit import estimate_all  # noqa: E402
from harness.estimate.run import measure_steps  # noqa: E402

URLS = {"postgresql": os.environ.get("HARNESS_POSTGRESQL_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
        "mysql": os.environ.get("HARNESS_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")}

ITEMS = Rev("b001", "create items", """
    op.create_table("items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")))
""", 'op.drop_table("items")')
STEPS = [
    Rev("b002", "add column default", 'op.add_column("items", sa.Column("flag", sa.Integer(), nullable=False, '
        'server_default="0"))', 'op.drop_column("items", "flag")'),
    Rev("b003", "int to bigint", 'op.alter_column("items", "n", type_=sa.BigInteger(), existing_type=sa.Integer(), '
        'existing_nullable=False)', 'pass'),
    Rev("b004", "create index", 'op.create_index("ix_items_title", "items", ["title"])', 'pass'),
    Rev("b005", "add check", 'op.create_check_constraint("n_positive", "items", "n > 0")', 'pass'),
]
MODELS = '''
class Item(db.Model):
    __tablename__ = "items"
    id = db.Column(sa.Integer, primary_key=True)
'''


def bench(dialect: str, sizes: tuple[int, ...], target: int, root: Path) -> list[dict]:
    config = build_config(app="app:create_app", db=(dialect,), from_revision="b001", checks=("upgrade",),
                          cwd=str(root), step_timeout_s=1800)
    run_id = "bench" + secrets.token_hex(3)
    settings = DatabaseSettings(dialect, url=URLS[dialect])
    with get_backend(dialect).server(settings, run_id) as server:
        started = time.monotonic()
        small = measure_steps(config, server, dialect, run_id, sizes)
        estimating_s = time.monotonic() - started
        big = measure_steps(config, server, dialect, run_id, (target,))
        version = server.server_version
    if small.errors or big.errors or small.failures or big.failures:
        raise SystemExit(f"{dialect}: {small.errors or big.errors or small.failures or big.failures}")
    rows = []
    for step in STEPS:
        actual = big.samples[step.revision][0]
        held = actual.rows["items"]
        estimate = estimate_all(small, [step.revision], {"items": TableSize(held, None, False)})[0]
        seconds = estimate.seconds or 0.0
        rows.append({"server": version, "step": step.message, "kind": estimate.kind, "lock": estimate.lock or "-",
                     "at": " / ".join(f"{s:.3f}" for _, s, _ in estimate.measured),
                     "estimate": seconds, "actual": actual.seconds, "rows": held,
                     "error": (seconds - actual.seconds) / actual.seconds * 100 if actual.seconds else 0.0,
                     "estimating_s": estimating_s, "fill_s": actual.fill_s})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="postgresql,mysql")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--target", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="mharness_bench_") as tmp:
        root = make_project(Path(tmp) / "project", [ITEMS, *STEPS], MODELS)
        results = []
        for attempt in range(args.repeat):
            for dialect in args.db.split(","):
                for row in bench(dialect, sizes, args.target, root):
                    results.append({"run": attempt + 1, **row})
                    print(f"# {dialect} run {attempt + 1}: {row['step']}: estimate {row['estimate']:.2f}s, "
                          f"measured {row['actual']:.2f}s", file=sys.stderr, flush=True)
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
          f"{platform.machine()}; sizes {args.sizes}, target {args.target:,} rows; {time.strftime('%Y-%m-%d')}\n")
    print("| run | server | step | estimate kind | lock | measured at sizes (s) | estimate at 1 M (s) | "
          "measured at 1 M (s) | error |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        error = ("constant" if r["kind"] == "constant" else f"{r['error']:+.0f} %" if r["actual"] >= 0.5
                 else f"{r['estimate'] - r['actual']:+.2f} s")
        print(f"| {r['run']} | {r['server']} | {r['step']} | {r['kind']} | {r['lock']} | {r['at']} | "
              f"{r['estimate']:.2f} | {r['actual']:.2f} | {error} |")
    sized = [r["error"] for r in results if r["kind"] != "constant" and r["actual"] >= 0.5]
    if sized:
        print(f"\nError of the size-dependent estimates of steps that took 0.5 s or more at {args.target:,} rows: "
              f"{min(sized):+.0f} % to {max(sized):+.0f} % ({len(sized)} estimates).")
    tiny = [abs(r["estimate"] - r["actual"]) for r in results if r["kind"] != "constant" and r["actual"] < 0.5]
    if tiny:
        print(f"Shorter steps (a percentage of a few milliseconds says nothing): off by at most {max(tiny):.2f} s.")
    constant = ["%.3f" % r["actual"] for r in results if r["kind"] == "constant"]
    if constant:
        print(f"Constant steps at 1 M rows: {', '.join(constant)} s.")
    estimating = sorted({"%.0f" % r["estimating_s"] for r in results})
    fills = sorted({"%.0f" % r["fill_s"] for r in results if r["step"] == STEPS[0].message})
    print(f"Estimating (both sizes, fill included) took {', '.join(estimating)} s per database and run; filling "
          f"the {args.target:,}-row table took {', '.join(fills)} s.")

if __name__ == "__main__":
    main()
