"""Every check, by the name it has in the JSON report. Each is a plain function ``(CheckContext) -> CheckResult``
whose docstring says why the check matters."""
from __future__ import annotations

from typing import Callable

from ..results import CheckResult
from .chain import check_downgrade, check_upgrade
from .context import CheckContext
from .schema import check_leaves_no_trace, check_no_pending_autogenerate, check_schema_matches_models

CHECKS: dict[str, Callable[[CheckContext], CheckResult]] = {
    "upgrade": check_upgrade,
    "schema_matches_models": check_schema_matches_models,
    "no_pending_autogenerate": check_no_pending_autogenerate,
    "downgrade": check_downgrade,
    "leaves_no_trace": check_leaves_no_trace,
}

__all__ = ["CHECKS", "CheckContext"]
