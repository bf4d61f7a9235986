"""migration-harness: verify that every Flask-Migrate migration works on every database the app supports.

Public API::

    from harness import build_config, run
    result = run(build_config(app="app:create_app", db=("sqlite", "postgresql")))
    print(result.ok, [d.status for d in result.databases])
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .config import DatabaseSettings, RunConfig, build_config  # noqa: E402
from .errors import ConfigError, DatabaseUnavailable, HarnessError  # noqa: E402
from .results import CheckResult, DatabaseResult, RunResult  # noqa: E402
from . import run as _run_package  # noqa: E402,F401 - the subpackage loaded first, so ``run`` stays the function

if TYPE_CHECKING:
    from .run.runner import Reporter
    from .run.preflight import Preflight


def run(config: RunConfig, reporter: Reporter | None = None, gate: Preflight | None = None) -> RunResult:
    """Run every check on every selected database and return the verdict (:func:`harness.run.runner.run`; the
    runner, and SQLAlchemy with it, is imported when first called, so that a command starts its preflight first)."""
    from .run.runner import run as run_checks

    return run_checks(config, reporter, gate)


__all__ = ["CheckResult", "ConfigError", "DatabaseResult", "DatabaseSettings", "DatabaseUnavailable",
           "HarnessError", "RunConfig", "RunResult", "__version__", "build_config", "run"]
