"""Measure every pending step at each size: one worker (mode ``estimate``) per size, each on its own scratch
database of the given server, one after the other (two runs at once would share the CPU and distort both)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..backends.base import Server
from ..run.process import run_worker
from ..config.redact import secrets_of
from ..run.runner import _spec


@dataclass(frozen=True)
class Sample:
    """One step run once on tables of ``size`` rows."""

    size: int                       #: rows asked for in every table
    seconds: float                  #: the time its statements took (the step without alembic's own work)
    fill_s: float                   #: time to fill the tables before it
    rows: dict[str, int]            #: every table's rows before the step
    tables: dict[str, Any]          #: what the observer saw per existing table (lock, rewritten, alters, copied)
    rows_touched: int = 0           #: rows the step's INSERT / UPDATE / DELETE statements changed
    passed: bool = True


@dataclass(frozen=True)
class Measurements:
    """Every sample of every step, and why a size could not be measured (then its samples are missing)."""

    dialect: str
    samples: dict[str, tuple[Sample, ...]] = field(default_factory=dict)
    #: why a measurement stopped early: a time limit, a crash, the app not loading
    errors: tuple[str, ...] = ()
    #: steps that failed on the generated rows at some size (then the steps after it were not measured there)
    failures: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0


def measure_steps(run_config: Any, server: Server, dialect: str, run_id: str, sizes: tuple[int, ...],
                  say: Callable[[str], None] | None = None, from_revision: str | None = None,
                  repeats: int = 2) -> Measurements:
    """Run the pending steps (``run_config``'s ``--from`` / ``--to``, or after ``from_revision``) ``repeats``
    times per size in ``sizes`` on ``server``, each on a fresh scratch database, and keep each step's fastest run
    per size (a busy machine only ever adds time); the app's own migrations, run by its own env.py, as ``flask db
    upgrade`` would."""
    say = say or (lambda text: None)
    started = time.monotonic()
    samples: dict[str, list[Sample]] = {}
    errors: list[str] = []
    failures: dict[str, str] = {}
    for size in [n for n in sorted(set(sizes)) for _ in range(max(1, repeats))]:
        with server.scratch_database() as url:
            spec = {**_spec(run_config, url, dialect, "estimate", (), run_id), "rows": size}
            if from_revision is not None:
                spec["from"] = from_revision
            outcome = run_worker(spec, cwd=run_config.cwd, step_timeout_s=run_config.step_timeout_s,
                                 secrets=secrets_of(url), on_event=_announce(dialect, size, say))
        for event in outcome.of_kind("measured"):
            samples.setdefault(event["revision"], []).append(Sample(
                size, float(event.get("statements_s", event["duration_s"])), float(event.get("fill_s", 0.0)),
                dict(event.get("tables_before", {})), dict(event.get("tables", {})), int(event["rows_touched"]),
                bool(event["passed"])))
        for event in outcome.of_kind("finding"):
            if event.get("rule") == "step-fails":
                failures.setdefault(event["revision"], f"failed on generated rows at {size:,} rows: {event['message']}")
        problem = _problem(outcome, dialect, size)
        if problem:
            errors.append(problem)
    return Measurements(dialect, {r: _fastest(s) for r, s in samples.items()}, tuple(dict.fromkeys(errors)),
                        failures, time.monotonic() - started)


def _fastest(runs: list[Sample]) -> tuple[Sample, ...]:
    """One sample per size: the fastest of its runs, sizes in order."""
    best: dict[int, Sample] = {}
    for sample in runs:
        if sample.size not in best or sample.seconds < best[sample.size].seconds:
            best[sample.size] = sample
    return tuple(best[size] for size in sorted(best))


def _announce(dialect: str, size: int, say: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "measured":
            say(f"{dialect}: {event['revision']} took {event.get('statements_s', 0):.3f}s on tables of {size:,} rows "
                f"(filled in {event.get('fill_s', 0):.1f}s)")
    return on_event


def _problem(outcome: Any, dialect: str, size: int) -> str | None:
    fatal = outcome.of_kind("fatal")
    where = f"measuring at {size:,} rows on {dialect}"
    if fatal:
        return f"{where}: {fatal[0]['message']}"
    if outcome.timed_out_after_s is not None:
        return f"{where}: stopped after {outcome.timed_out_after_s:g}s (raise --step-timeout, or lower the sizes)"
    if not outcome.finished:
        return f"{where}: {outcome.crash or 'the worker stopped without a verdict'}"
    return None

