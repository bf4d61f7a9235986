"""A worker that serves every session of one database: the app is loaded once, each session runs on the scratch
database the parent has just made fresh again (dropped and created under the same name, so the app's engine still
points at it). Loading the app is most of a small chain's cost; a run loads it once per database.

After the spec line (mode ``serve``) the worker says ``{"event": "ready", "pristine": bool}`` once the app is up
(``pristine``: its start-up left the scratch database empty, so a database made fresh again is what a fresh load
would have found); each further line on stdin is a session (``{"checks": [...], ...}`` over the spec; ``lint``
sends sessions of its own modes, ``{"mode": "offline"}`` then ``{"mode": "observe"}``), answered with its events
and ``{"event": "session_done"}``; the end of stdin ends the worker. Between sessions every engine
the process connected with is disposed (and the app's ORM session removed), so nothing holds the database the
parent drops. Standard library and the app's own SQLAlchemy only: this runs in the app's interpreter.
"""
from __future__ import annotations

import json
import sys
import weakref
from typing import Any, Callable

import sqlalchemy as sa

ChainRunner = Callable[[dict[str, Any], Any, list, list, Callable[[dict[str, Any]], None]], None]


def serve(spec: dict[str, Any], env: Any, revisions: list, heads: list[str],
          emit: Callable[[dict[str, Any]], None], run_chain: ChainRunner) -> None:
    """Run each session the parent sends, one after another, with this one app."""
    engines: weakref.WeakSet[Any] = weakref.WeakSet()

    def seen(conn: Any, *branch: Any) -> None:  # SQLAlchemy 1.3 / 1.4 also pass ``branch``
        engines.add(conn.engine)

    sa.event.listen(sa.engine.Engine, "engine_connect", seen)
    pristine = _is_empty(env)
    _release(env, engines)
    emit({"event": "ready", "pristine": pristine})
    for line in sys.stdin:
        if not line.strip():
            continue
        session = {**spec, "mode": "chain", **json.loads(line)}  # a rollout command's session names its mode
        try:
            run_chain(session, env, revisions, heads, emit)
        finally:
            _release(env, engines)
        emit({"event": "session_done"})


def _is_empty(env: Any) -> bool:
    """Whether the scratch database holds no table after the app's start-up (some factories run ``create_all()``
    or ``upgrade()``: then every session needs an app loaded on its own database, as the parent then does)."""
    try:
        with env.engine().connect() as conn:
            return not sa.inspect(conn).get_table_names()
    except Exception:  # noqa: BLE001 - cannot tell: the parent loads the app again for every session
        return False


def _release(env: Any, engines: weakref.WeakSet[Any]) -> None:
    """Close every connection to the scratch database this process holds (the parent drops it next)."""
    session = getattr(env.db, "session", None)
    try:
        if session is not None and hasattr(session, "remove"):
            session.remove()
    except Exception:  # noqa: BLE001 - a session on a connection that died: disposing its engine closes it
        pass
    for engine in list(engines):
        try:
            engine.dispose()
        except Exception:  # noqa: BLE001 - the server went away: nothing left to close
            pass


__all__ = ["serve"]
