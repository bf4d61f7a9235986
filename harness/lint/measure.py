"""Worker mode ``estimate``: lint's observed run of every pending step (:mod:`harness.lint.observe`), its tables
first filled in bulk to ``spec["rows"]`` rows each (:mod:`harness.estimate.fill`), each step timed.

It emits one ``measured`` event per step (the observation, with the fill's time and every table's row count
before the step) and the ``step-fails`` findings; the other findings are lint's own, reported by its ``observe``
run already. :mod:`harness.estimate.run` starts it once per size.
"""
from __future__ import annotations

from typing import Any, Callable

from .observe import run_mode as observe


def run_mode(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
             emit: Callable[[dict[str, Any]], None]) -> None:
    def relay(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "observation":
            emit({**event, "event": "measured", "size": spec["rows"]})
        elif kind == "finding":
            if event.get("rule") == "step-fails":
                emit(event)
        else:
            emit(event)

    observe({**spec, "bulk_fill": True}, env, revisions, heads, relay)
