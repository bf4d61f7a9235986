"""rehearse's lock durations: each pending step measured on the throwaway server at two or more sizes and
estimated at production's row counts (read in the same read-only snapshot: :attr:`Source.sizes`); a step over the
lock budget makes the verdict ``unsafe``.

The calls :func:`harness.rehearse.command.rehearse` makes:

* :func:`estimate_pending` inside the throwaway server's block, after the rehearsal;
* :func:`with_estimates` on the step reports (each gets ``estimate``);
* :func:`estimate_reasons`: the reasons the budget adds (``unsafe``); what could not be proved goes to the notes
  until the verdict has a word for it (:func:`unproved` gives those lines).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable

from ..backends.base import Server
from ..estimate.fit import StepEstimate, budget_reasons, estimate_all, unproved_reasons
from ..estimate.run import measure_steps
from ..estimate.settings import EstimateSettings
from .source import Source

#: production tables of at most this many rows are not worth measuring at 10k and 100k rows
SMALL_TABLE_ROWS = 1_000


def estimate_pending(settings: EstimateSettings | None, run_config: Any, server: Server, source: Source,
                     pending: tuple[str, ...], run_id: str, say: Callable[[str], None],
                     notes: list[str]) -> list[StepEstimate]:
    """Measure the ``pending`` steps at ``settings.sizes`` on ``server`` (scratch databases built by the
    migrations up to production's revision) and estimate them at production's sizes; why not, in ``notes``."""
    if settings is None or not pending:
        return []
    if source.sizes_error:
        notes.append(f"lock durations not estimated: production's {source.sizes_error}")
        return []
    if len(source.revisions) > 1:
        notes.append("lock durations not estimated: production is at several revisions (branches)")
        return []
    known = [s.rows for s in source.sizes.values()]
    if all(rows is not None and rows <= SMALL_TABLE_ROWS for rows in known):
        largest = max((r or 0 for r in known), default=0)
        notes.append(f"lock durations not measured: production's largest table holds {largest:,} rows (at most "
                     f"{SMALL_TABLE_ROWS:,}: too few for any step to hold a lock for long)")
        return []
    say(f"measuring the pending steps at {', '.join(f'{n:,}' for n in settings.sizes)} rows per table")
    start = source.revisions[0] if source.revisions else None
    measured = measure_steps(run_config, server, source.dialect, run_id, settings.sizes, say, from_revision=start)
    notes.extend(f"lock durations: {error}" for error in measured.errors)
    return estimate_all(measured, pending, source.sizes)


def with_estimates(steps: Iterable[Any], estimates: list[StepEstimate]) -> tuple[Any, ...]:
    """The step reports, each with its estimate (``StepReport.estimate``)."""
    by_revision = {e.revision: e.to_dict() for e in estimates}
    return tuple(replace(s, estimate=by_revision.get(s.revision)) for s in steps)


def estimate_reasons(settings: EstimateSettings | None, estimates: list[StepEstimate], labels: dict[str, str],
                     notes: list[str]) -> list[str]:
    """The ``unsafe`` reasons of the lock budget; what keeps it from being proved is added to ``notes``."""
    if settings is None:
        return []
    notes.extend(unproved(estimates, labels))
    return budget_reasons(estimates, settings.lock_budget_s, labels)


def unproved(estimates: list[StepEstimate], labels: dict[str, str]) -> list[str]:
    """Lines for a verdict ``unproved``: a step whose lock time could not be established."""
    return unproved_reasons(estimates, labels)
