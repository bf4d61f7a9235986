"""The worker's entry point, in whichever interpreter runs the app: it checks that interpreter's stack
(:mod:`harness.chain.app_stack`: the oldest releases the worker supports, the drivers) before anything of the app or of
the worker is imported, then hands over to :func:`harness.run.worker.main`. Below the floor it answers with one
``fatal`` event instead (a :class:`~harness.errors.ConfigError`, exit 2). Standard library only until the hand-over.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from ..chain.app_stack import below_floor


def main() -> int:
    """The worker's entry point: check the environment, then hand over to :func:`harness.run.worker.main`."""
    problem = below_floor()
    if problem is None:
        from . import worker

        return worker.main()
    spec: dict[str, Any] = json.loads(sys.stdin.readline() or "{}")
    del spec  # read so that the parent's write never meets a closed pipe
    for event in ({"event": "fatal", "kind": "ConfigError", "exit_code": 2, "message": problem}, {"event": "done"}):
        sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()
    return 0


__all__ = ["main"]
