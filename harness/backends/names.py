"""The names the harness gives what it makes (scratch databases, containers, run ids): standard library only, so
that a command can start its preflight before it imports SQLAlchemy."""
from __future__ import annotations

import secrets

#: Every scratch database (and SQLite temp directory) starts with this, so ``clean`` can find leftovers.
SCRATCH_PREFIX = "mharness_"
#: Every container the harness starts carries this label, its value the run id.
CONTAINER_LABEL = "org.migration-harness.run"
#: the driver a URL without one gets (``postgresql://`` → ``postgresql+psycopg2://``): each backend's
#: ``default_driver``, here so that the preflight names the drivers the app needs without importing a backend
DEFAULT_DRIVERS: dict[str, str] = {"postgresql": "psycopg2", "mysql": "pymysql"}


def new_run_id() -> str:
    """A short random id, unique enough that two concurrent runs never share a scratch name."""
    return secrets.token_hex(4)


__all__ = ["CONTAINER_LABEL", "DEFAULT_DRIVERS", "SCRATCH_PREFIX", "new_run_id"]
