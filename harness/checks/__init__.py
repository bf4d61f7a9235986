"""Every check, by the name it has in the JSON report. Each is a plain function ``(CheckContext) -> CheckResult``
whose docstring says why the check matters.

Layer: it may import ``chain/``, ``schema/``, ``datagen/``, ``backends/``, ``config/`` and the plain modules
``errors``, ``results``, ``versions``, ``_version`` (the layers below it, tests/test_layout.py), never a package
above it.
"""
from __future__ import annotations

from typing import Callable

from ..results import CheckResult
from .chain import check_downgrade, check_single_head, check_stairway, check_upgrade
from .context import CheckContext
from .data import check_data
from .schema import check_leaves_no_trace, check_no_pending_autogenerate, check_schema_matches_models

CHECKS: dict[str, Callable[[CheckContext], CheckResult]] = {
    "single_head": check_single_head,
    "upgrade": check_upgrade,
    "schema_matches_models": check_schema_matches_models,
    "no_pending_autogenerate": check_no_pending_autogenerate,
    "downgrade": check_downgrade,
    "leaves_no_trace": check_leaves_no_trace,
    "stairway": check_stairway,
    "data": check_data,
}

__all__ = ["CHECKS", "CheckContext"]
