"""From measurements at a few sizes to one estimate per step at production's size, and the lock budget.

What a step does to an existing table comes from lint's observers (PostgreSQL: the table rewritten, the lock held
at commit; MySQL / MariaDB: each ALTER's algorithm; SQLite: the table copied; all: rows its DML changed). A step
that does nothing of the kind is *constant: catalogue only*. Otherwise its time is fitted as ``a + b × rows``
(least squares over the sizes, ``b`` ≥ 0) and evaluated at production's row count of the largest table it works
on (an upper bound when it works on several). A step whose time does not grow with the rows (PostgreSQL's ``ADD
COLUMN ... DEFAULT`` takes ACCESS EXCLUSIVE but only writes the catalogue) is constant too, with what was measured.

>>> e = estimate_step("a1b2", "postgresql", samples, {"users": TableSize(12_400_000, 3_100_000_000, True)})  # doctest: +SKIP
>>> e.describe()  # doctest: +SKIP
'rewrites users (12.4 M rows, 3.1 GB): ~4 min holding ACCESS EXCLUSIVE (measured 0.31 s at 10k, 3.0 s at 100k)'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..backends.base import TableSize
from .run import Measurements, Sample

SIZE, CONSTANT, UNKNOWN, NOT_MEASURED = "size", "constant", "unknown", "not_measured"

#: PostgreSQL lock modes that make writers wait (SHARE and stronger)
_PG_BLOCKING = ("SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")
#: growth between the smallest and the largest size below which a step is taken as not depending on size: 10 ms
#: (its statements are timed alone), or half their time at the smallest size: a loaded machine varies that much
_NOISE_S, _NOISE_SHARE = 0.010, 0.5

SAFER = {
    "rewrite": "change the type in steps: add a new column, backfill it in batches, switch the code, drop the old "
               "column (or a binary-coercible change: varchar(n) to a longer varchar or text)",
    "index": "CREATE INDEX CONCURRENTLY (op.create_index(..., postgresql_concurrently=True) inside "
             "op.get_context().autocommit_block())",
    "foreign-key": "ADD CONSTRAINT ... NOT VALID (postgresql_not_valid=True), then VALIDATE CONSTRAINT in a later "
                   "migration (it takes only SHARE UPDATE EXCLUSIVE)",
    "scan": "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later migration, then SET NOT NULL "
            "(PostgreSQL 12+ skips the scan); for a CHECK or FOREIGN KEY: NOT VALID + VALIDATE CONSTRAINT",
    "dml": "update in batches of a few thousand rows, each its own transaction (outside the schema migration)",
    "mysql-copy": "an online schema change (gh-ost, pt-online-schema-change), or split the change so each ALTER "
                  "runs ALGORITHM=INSTANT or INPLACE, LOCK=NONE",
    "mysql-inplace": "it runs online (LOCK=NONE), but reads or rebuilds the whole table: run it off-peak, or with "
                     "gh-ost / pt-online-schema-change on a big table",
    "sqlite": "run it while the application is stopped (SQLite's write lock covers the whole database)",
}


@dataclass(frozen=True)
class Effect:
    """What a step did to one existing table (``table`` ``None``: rows changed, table not known)."""

    table: str | None
    what: str          #: rewrites, copies, scans, updates, rebuilds in place...
    lock: str
    blocks_writes: bool
    safer: str
    #: it certainly reads or writes every row (a rewrite, a copy, an index build), whatever the timings say
    whole_table: bool = False


@dataclass(frozen=True)
class StepEstimate:
    """How long one pending step will take on production, and what it holds meanwhile."""

    revision: str
    dialect: str
    kind: str                        #: size, constant, unknown (production's rows not known), not_measured
    seconds: float | None
    lock: str | None
    blocks_writes: bool
    basis: str                       #: how the figure was obtained, in words
    what: str = ""
    table: str | None = None
    rows: int | None = None          #: production's rows of ``table``
    bytes: int | None = None
    rows_estimated: bool = True
    per_row_s: float | None = None
    measured: tuple[tuple[int, float, float], ...] = ()   #: (rows, seconds, fill seconds) per size
    safer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": None if self.seconds is None else round(self.seconds, 3), "lock": self.lock,
                "rows": self.rows, "basis": self.basis, "kind": self.kind, "table": self.table, "bytes": self.bytes,
                "rows_estimated": self.rows_estimated, "blocks_writes": self.blocks_writes,
                "per_row_s": self.per_row_s,
                "measured": [{"rows": r, "seconds": round(s, 4), "fill_s": round(f, 3)} for r, s, f in self.measured],
                "safer": self.safer or None, "text": self.describe()}

    def describe(self) -> str:
        """One line: ``rewrites users (12.4 M rows, 3.1 GB): ~4 min holding ACCESS EXCLUSIVE (measured ...)``."""
        if self.kind in (CONSTANT, NOT_MEASURED):
            return self.basis
        size = ", ".join(p for p in (_rows_text(self.rows, self.rows_estimated), _bytes_text(self.bytes)) if p)
        where = f"{self.what} {self.table} ({size})" if self.table else f"{self.what} ({size})"
        if self.kind == UNKNOWN:
            return f"{where}: duration unknown, holding {self.lock} ({self.basis})"
        return f"{where}: ~{duration_text(self.seconds or 0.0)} holding {self.lock} ({self.basis})"


def estimate_all(measurements: Measurements, revisions: Iterable[str],
                 sizes: dict[str, TableSize]) -> list[StepEstimate]:
    """One estimate per revision of ``revisions`` (in that order) from ``measurements``."""
    return [estimate_step(r, measurements.dialect, measurements.samples.get(r, ()), sizes,
                          measurements.failures.get(r)) for r in revisions]


def estimate_step(revision: str, dialect: str, samples: Iterable[Sample], sizes: dict[str, TableSize],
                  failure: str | None = None) -> StepEstimate:
    """The estimate of one step from its samples (one per size) and production's table sizes (``failure``: why
    it did not run at some size)."""
    runs = sorted((s for s in samples if s.passed), key=lambda s: s.size)
    if len(runs) < 2:
        why = failure or "an earlier step failed there, or the measurement stopped"
        return StepEstimate(revision, dialect, NOT_MEASURED, None, None, False,
                            f"not measured: it ran at {len(runs)} size(s), two are needed ({why})")
    effects = _merged([e for s in runs for e in effects_of(s, dialect)])
    measured_text = "measured " + ", ".join(f"{duration_text(s.seconds, exact=True)} at {_rows_text(s.size)}"
                                            for s in runs)
    if not effects:
        return StepEstimate(revision, dialect, CONSTANT, max(s.seconds for s in runs), None, False,
                            f"constant: catalogue only ({measured_text})",
                            measured=tuple((s.size, s.seconds, s.fill_s) for s in runs))
    main = _main_effect(effects, sizes)
    points = [(float(_sample_rows(s, effects)), s.seconds) for s in runs]
    intercept, slope = _fit(points)
    if any(e.whole_table for e in effects):
        # it certainly reads or writes every row: never constant; a fit that came out flat (noise at small sizes:
        # MariaDB's COPY has a fixed cost of a few hundred ms) falls back to the largest run's cost per row
        if slope <= 0:
            intercept, slope = 0.0, points[-1][1] / points[-1][0]
    measured = tuple((int(x), y, s.fill_s) for (x, y), s in zip(points, runs))
    lock = main.lock if len(effects) == 1 else "; ".join(dict.fromkeys(e.lock for e in effects))
    blocks = any(e.blocks_writes for e in effects)
    growth = slope * (points[-1][0] - points[0][0])
    if not any(e.whole_table for e in effects) and growth < max(_NOISE_S, _NOISE_SHARE * points[0][1]):
        return StepEstimate(revision, dialect, CONSTANT, max(y for _, y in points), lock, blocks,
                            f"constant: does not grow with the rows of {main.table or 'the tables'}, holding {lock} "
                            f"({measured_text})", main.what, main.table, measured=measured, safer=main.safer)
    size = sizes.get(main.table or "") if main.table else _largest(sizes)
    in_production = main.table is None or main.table in sizes
    rows = (size.rows if size else None) if in_production else 0
    per_row = f"{slope * 1e6:.2g} µs per row"
    common = dict(what=main.what, table=main.table, bytes=size.bytes if size else None,
                  rows_estimated=size.rows_estimated if size else False, per_row_s=slope, measured=measured,
                  safer=main.safer)
    if rows is None:
        why = "never analysed: run ANALYZE on it there" if dialect == "postgresql" else "not in the catalogue"
        return StepEstimate(revision, dialect, UNKNOWN, None, lock, blocks,
                            f"production's row count unknown ({why}); {per_row}, {measured_text}", rows=None,
                            **common)  # type: ignore[arg-type]
    seconds = max(intercept + slope * rows, 0.0)
    return StepEstimate(revision, dialect, SIZE, seconds, lock, blocks, f"{measured_text}; {per_row}", rows=rows,
                        **common)  # type: ignore[arg-type]


def effects_of(sample: Sample, dialect: str) -> list[Effect]:
    """What one run of a step did to existing tables, per the dialect's observer."""
    out: list[Effect] = []
    for table, info in sample.tables.items():
        if dialect == "postgresql":
            lock = info.get("lock")
            if info.get("rewritten"):
                out.append(Effect(table, "rewrites", "ACCESS EXCLUSIVE", True, SAFER["rewrite"], True))
            elif lock in _PG_BLOCKING:
                kind = {"SHARE": "index", "SHARE ROW EXCLUSIVE": "foreign-key"}.get(lock, "scan")
                what = {"index": "builds an index on", "foreign-key": "validates"}.get(kind, "scans")
                out.append(Effect(table, what, lock, True, SAFER[kind], kind == "index"))
            elif lock == "ROW EXCLUSIVE" and sample.rows_touched:
                out.append(Effect(table, "updates", "row locks on the rows it changes", True, SAFER["dml"]))
        elif dialect == "mysql":
            for alter in info.get("alters", ()):
                algorithm = alter.get("algorithm")
                if algorithm == "COPY":
                    out.append(Effect(table, "copies", "a lock that blocks writes (ALGORITHM=COPY)", True,
                                      SAFER["mysql-copy"], True))
                elif algorithm == "INPLACE":
                    out.append(Effect(table, "rebuilds in place", "only brief metadata locks (ALGORITHM=INPLACE, LOCK=NONE: "
                                      "writes go on)", False, SAFER["mysql-inplace"], True))
                elif algorithm != "INSTANT":
                    out.append(Effect(table, "alters", "an algorithm the probe could not tell (taken as blocking)",
                                      True, SAFER["mysql-copy"]))
        elif info.get("copied"):
            out.append(Effect(table, "copies", "the database's write lock", True, SAFER["sqlite"], True))
    if sample.rows_touched and not any(e.what == "updates" for e in out):
        lock = "the database's write lock" if dialect == "sqlite" else "row locks on the rows it changes"
        out.append(Effect(None, "changes rows", lock, True, SAFER["dml"]))
    return out


def over_budget(estimate: StepEstimate, budget_s: float) -> bool:
    """Whether the step is estimated to hold a lock that blocks writes for longer than ``budget_s`` seconds."""
    return estimate.blocks_writes and estimate.seconds is not None and estimate.seconds > budget_s


def budget_message(estimate: StepEstimate, budget_s: float) -> str:
    """What the budget finding / reason says: the estimate, the budget, the safer pattern."""
    return (f"{estimate.describe()}: over the lock budget of {budget_s:g} s (--lock-budget); instead: "
            f"{estimate.safer}")


def _merged(effects: list[Effect]) -> list[Effect]:
    return list(dict.fromkeys(effects))


def _main_effect(effects: list[Effect], sizes: dict[str, TableSize]) -> Effect:
    """The effect on the table production has most rows in (blocking effects first)."""
    def weight(effect: Effect) -> tuple[bool, int]:
        size = sizes.get(effect.table or "")
        return effect.blocks_writes, (size.rows or 0) if size else 0
    return max(effects, key=weight)


def _largest(sizes: dict[str, TableSize]) -> TableSize | None:
    """For rows changed in a table not known: production's largest table (an upper bound)."""
    known = [s for s in sizes.values() if s.rows is not None]
    return max(known, key=lambda s: s.rows or 0) if known else None


def _sample_rows(sample: Sample, effects: list[Effect]) -> int:
    """The rows the step worked on in this run: the largest of its tables (every table had about ``size``)."""
    counts = [sample.rows.get(e.table, 0) for e in effects if e.table]
    return max(counts) if counts and max(counts) else sample.size


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x`` with ``b`` ≥ 0 (more rows never make a step faster)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    slope = max(slope, 0.0)
    return mean_y - slope * mean_x, slope


def duration_text(seconds: float, exact: bool = False) -> str:
    """``0.31 s``, ``12 s``, ``4 min``, ``2.1 h``."""
    if seconds < 1:
        return f"{seconds * 1000:.2g} ms" if seconds < 0.1 else f"{seconds:.2f} s"
    if seconds < 10 or exact and seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rows_text(rows: int | None, estimated: bool = False) -> str:
    if rows is None:
        return "rows unknown"
    if rows >= 1_000_000:
        text = f"{rows / 1_000_000:.3g} M"
    elif rows >= 10_000:
        text = f"{rows // 1000}k"
    else:
        text = f"{rows:,}"
    return f"{'~' if estimated else ''}{text} rows"


def _bytes_text(size: int | None) -> str:
    if size is None:
        return ""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def budget_reasons(estimates: Iterable[StepEstimate], budget_s: float, labels: dict[str, str]) -> list[str]:
    """Why the verdict is ``unsafe``: each step over the lock budget (``labels``: revision → ``rev (message)``)."""
    return [f"pending migration {labels.get(e.revision, e.revision)} {budget_message(e, budget_s)}"
            for e in estimates if over_budget(e, budget_s)]


def unproved_reasons(estimates: Iterable[StepEstimate], labels: dict[str, str]) -> list[str]:
    """What keeps the lock budget from being proved: a step that blocks writes for a time that grows with the
    rows, where production's row count is unknown, or a step that could not be measured."""
    out = []
    for e in estimates:
        label = labels.get(e.revision, e.revision)
        if e.kind == UNKNOWN and e.blocks_writes:
            out.append(f"pending migration {label}: lock duration not known: {e.describe()}")
        elif e.kind == NOT_MEASURED:
            out.append(f"pending migration {label}: lock duration {e.basis}")
    return out
