"""The estimate options of ``lint`` and ``rehearse``: flags first, then ``[tool.migration-harness.<command>]``
(``lock_budget``, ``estimate_rows``, and for lint ``sizes_from``), then the defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..config import read_pyproject
from ..errors import ConfigError
from . import DEFAULT_LOCK_BUDGET_S, DEFAULT_SIZES

#: the keys of ``[tool.migration-harness.lint]`` / ``.rehearse`` this module reads
KEYS = ("lock_budget", "estimate_rows", "sizes_from")


@dataclass(frozen=True)
class EstimateSettings:
    """How long a write-blocking lock may be held (seconds), the sizes steps are measured at, and (lint) the
    database whose catalogue gives production's sizes."""

    lock_budget_s: float = DEFAULT_LOCK_BUDGET_S
    sizes: tuple[int, ...] = DEFAULT_SIZES
    sizes_from: str | None = None


def estimate_settings(cwd: str, section: str, *, lock_budget: float | None = None, sizes: str | None = None,
                      sizes_from: str | None = None) -> EstimateSettings:
    """The settings for command ``section`` (``lint`` or ``rehearse``); a bad value is a :class:`ConfigError`."""
    table = read_pyproject(cwd).get(section, {})
    where = f"pyproject.toml [tool.migration-harness.{section}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    budget = lock_budget if lock_budget is not None else table.get("lock_budget", DEFAULT_LOCK_BUDGET_S)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
        raise ConfigError(f"--lock-budget / {where} lock_budget: give a number of seconds above 0, not {budget!r}")
    raw: Any = sizes if sizes is not None else table.get("estimate_rows", list(DEFAULT_SIZES))
    parsed = parse_sizes(raw, where)
    source = sizes_from or os.environ.get("HARNESS_SIZES_FROM") or table.get("sizes_from")
    return EstimateSettings(float(budget), parsed, str(source) if source else None)


def parse_sizes(raw: Any, where: str = "--estimate-rows") -> tuple[int, ...]:
    """``"10000,100000"`` or ``[10000, 100000]``: at least two distinct sizes of 100 rows or more."""
    items = raw.split(",") if isinstance(raw, str) else raw
    try:
        values = tuple(sorted({int(str(v).strip().replace("_", "")) for v in items}))
    except (TypeError, ValueError):
        raise ConfigError(f"--estimate-rows / {where} estimate_rows: give row counts, e.g. 10000,100000, "
                          f"not {raw!r}") from None
    if len(values) < 2 or values[0] < 100:
        raise ConfigError(f"--estimate-rows / {where} estimate_rows: give at least two different sizes of 100 rows "
                          f"or more (a cost per row needs two points), not {raw!r}")
    return values
