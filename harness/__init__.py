"""migration-harness: verify that every Flask-Migrate migration works on every database the app supports.

Public API::

    from harness import build_config, run
    result = run(build_config(app="app:create_app", db=("sqlite", "postgresql")))
    print(result.ok, [d.status for d in result.databases])
"""
from __future__ import annotations

from ._version import __version__
from .config import DatabaseSettings, RunConfig, build_config  # noqa: E402
from .errors import ConfigError, DatabaseUnavailable, HarnessError  # noqa: E402
from .results import CheckResult, DatabaseResult, RunResult  # noqa: E402
from .run.runner import run  # noqa: E402

__all__ = ["CheckResult", "ConfigError", "DatabaseResult", "DatabaseSettings", "DatabaseUnavailable",
           "HarnessError", "RunConfig", "RunResult", "__version__", "build_config", "run"]
