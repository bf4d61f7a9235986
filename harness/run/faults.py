"""Tell an environment fault from a verdict: a server that died, froze or ran out of disk, or a worker killed from
outside, costs that database's verdict (``error``, with the fault and where it struck), never a ``failed`` that
blames the revision that happened to be running.

The evidence is the server itself, asked after the failure (:meth:`Server.probe`: is it still answering? what does
Docker say of its container?), together with the driver's own words (:meth:`Backend.environment_fault`). A check
that had finished before the fault keeps its verdict.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from ..backends import Server, get_backend
from ..config import DatabaseSettings
from .process import WorkerOutcome
from ..results import ERROR, FAILED, SKIPPED, CheckResult
from ..chain.steps import step_phrase

SERVER_GONE, SERVER_FROZEN, DISK_FULL, WORKER_KILLED = "server_gone", "server_frozen", "disk_full", "worker_killed"
#: how long a server given by URL that stopped answering may take to come back before its session is run again
RECONNECT_WAIT_S = 10.0
_NOT_A_VERDICT = "an environment fault, not a verdict on the migrations"


@dataclass(frozen=True)
class Classified:
    """A session's results with every environment fault made an ``error``; ``retry`` says why the session may be
    run again on a fresh scratch database (its connection was lost, the server may come back), else ``None``."""

    results: list[CheckResult]
    retry: str | None = None


def where_it_struck(check: CheckResult, outcome: WorkerOutcome, dialect: str, stopped: bool) -> str:
    """``during the <check> check[, at <step>]``: the step from the check's own failure (``upgrade to r03
    (posts)``), else the last step that check began (for a check the worker never reported, ``stopped``, the last
    step the worker began)."""
    during = f"during the {check.name} check"
    marker = f" failed on {dialect}: "
    if marker in check.message:
        return f"{during}, at {check.message.split(marker, 1)[0]}"
    steps = outcome.of_kind("step")
    own = [s for s in steps if s.get("check") == check.name]
    if not stopped:  # the check reported its own end: the last step it began, if it began any
        if not own:
            return during
        steps = own
    if not steps:
        return during if outcome.finished else f"{during}, before its first step (while the app started)"
    return f"{during}, at {_phrase((own or steps)[-1])}"


def last_step(outcome: WorkerOutcome) -> str:
    """The step the worker was in when it stopped (``upgrade to a003 (posts)``), from its last ``step`` event;
    ``""`` before its first step."""
    steps = outcome.of_kind("step")
    return _phrase(steps[-1]) if steps else ""


def _phrase(step: dict) -> str:
    """A ``step`` event as words: ``upgrade to a003 (posts)``."""
    label = f"{step['revision']} ({step['message']})" if step.get("message") else step["revision"]
    return step_phrase(step["direction"], label, step.get("parents", ()))


def worker_killed(outcome: WorkerOutcome, during: str, dialect: str) -> str:
    """The reason of a session whose worker a signal ended."""
    return (f"{dialect}: the worker was killed (signal {outcome.killed_by}) during {during}: out of memory, or "
            f"killed from outside; {_NOT_A_VERDICT}")


def classify(results: list[CheckResult], outcome: WorkerOutcome, server: Server,
             settings: DatabaseSettings) -> Classified:
    """Turn each ``failed`` / ``error`` check that an environment fault explains into an ``error`` naming it."""
    dialect = settings.dialect
    backend = get_backend(dialect)
    reported = {e["name"] for e in outcome.of_kind("check")}
    probed: list[str | None] = []

    def probe() -> str | None:  # asked once, and only after a failure
        if not probed:
            probed.append(server.probe())
        return probed[0]

    out: list[CheckResult] = []
    retry = None
    for check in results:
        if check.status not in (FAILED, ERROR) or check.fault:
            out.append(check)
            continue
        found = backend.environment_fault(check.message)
        stopped = check.name not in reported  # the worker never reported it: timed out, or it crashed
        where = where_it_struck(check, outcome, dialect, stopped)
        if found and found[0] == "disk_full":
            out.append(_fault(check, DISK_FULL, f"{dialect}: the server ran out of disk space {where} ({found[1]}); "
                                                f"{_room(settings, server)}; {_NOT_A_VERDICT}"))
            continue
        if not found and not stopped:  # the migration's or the check's own failure: a verdict
            out.append(check)
            continue
        gone = probe()
        if gone is None and not found:  # a hung step or a crash on a server that is fine: as the worker said
            out.append(check)
            continue
        full = backend.environment_fault(gone or "")
        if full and full[0] == "disk_full":  # the server's own log: it crashed for want of disk space
            out.append(_fault(check, DISK_FULL, f"{dialect}: the server ran out of disk space {where} ({gone}); "
                                                f"{_room(settings, server)}; {_NOT_A_VERDICT}"))
            continue
        if outcome.timed_out_after_s is not None and stopped:
            words = f"the step did not finish within {outcome.timed_out_after_s:g}s"
        else:
            words = found[1] if found else (outcome.crash or "no answer")
        frozen = gone is not None and "paused" in gone
        if gone is None:
            text = (f"{dialect}: the connection to the server was lost {where} ({words}); the server answers "
                    "again (it restarted, or the network dropped)")
        else:
            text = f"{dialect}: the server {'stopped answering' if frozen else 'went away'} {where} ({words}); {gone}"
        if gone is None or (not frozen and server.kind == "url"):
            retry = retry or text  # a server given by URL may come back; a dead container does not
        out.append(_fault(check, SERVER_FROZEN if frozen else SERVER_GONE, f"{text}; {_NOT_A_VERDICT}"))
    return Classified(out, retry)


def between_sessions(reason: str, planned: tuple[str, ...], server: Server,
                     settings: DatabaseSettings) -> Classified | None:
    """The checks of a session that never began: its scratch database could not be made afresh (``reason``, the
    :class:`DatabaseUnavailable`'s) because the server died or froze after the session before it ended. The first
    planned check is an ``error`` naming the fault, the others are not run; ``None`` when the server still answers
    (a refusal of its own, e.g. no right to create databases: the caller reports it as before)."""
    gone = server.probe()
    if gone is None:
        return None
    dialect = settings.dialect
    frozen = "paused" in gone
    words = reason if gone in reason else f"{reason}; {gone}"
    text = (f"{dialect}: the server {'stopped answering' if frozen else 'went away'} between two sessions, before "
            f"the {planned[0]} check began ({words})")
    first = CheckResult(planned[0], ERROR, None, f"{text}; {_NOT_A_VERDICT}",
                        fault=SERVER_FROZEN if frozen else SERVER_GONE)
    rest = [CheckResult(name, SKIPPED, None, f"not run: the server {'froze' if frozen else 'went away'} before "
                                             f"{planned[0]} began") for name in planned[1:]]
    return Classified([first, *rest], text if not frozen and server.kind == "url" else None)


def _fault(check: CheckResult, fault: str, message: str) -> CheckResult:
    return replace(check, status=ERROR, revision=None, message=message, fault=fault, same_as=None)


def _room(settings: DatabaseSettings, server: Server) -> str:
    """What to raise, and how."""
    if server.kind == "container":
        size = settings.tmpfs_size or "Docker's default (half the machine's memory)"
        return (f"the container's data directory is a tmpfs of {size}: give it more with --tmpfs-size "
                f"(HARNESS_TMPFS_SIZE, tmpfs_size in pyproject.toml), e.g. --tmpfs-size {_twice(settings.tmpfs_size)}")
    if server.kind == "file":
        return "free space in the temporary directory (or point TMPDIR at a larger one)"
    return "free disk space on the server"


def _twice(size: str | None) -> str:
    """A size to try next: twice ``size`` (``256m`` → ``512m``), or ``4g`` for Docker's default or a size this
    does not read."""
    match = re.fullmatch(r"(\d+)([kmgt]?)b?", (size or "").strip().lower())
    if not match:
        return "4g"
    return f"{int(match.group(1)) * 2}{match.group(2)}"


def reconnect_wait_s() -> float:
    """How long a server given by URL may take to come back: ``HARNESS_RECONNECT_WAIT`` seconds, default 10."""
    try:
        return max(0.0, float(os.environ.get("HARNESS_RECONNECT_WAIT", RECONNECT_WAIT_S)))
    except ValueError:
        return RECONNECT_WAIT_S


def wait_for_server(server: Server, limit_s: float | None = None) -> bool:
    """Whether the server answers again within ``limit_s`` (bounded: a server that stays down costs that long)."""
    deadline = time.monotonic() + (reconnect_wait_s() if limit_s is None else limit_s)
    while True:
        if server.probe() is None:
            return True
        if time.monotonic() >= deadline:
            server.waited_in_vain = True
            return False
        time.sleep(1.0)


def sweep_when_back(server: Server) -> None:
    """Drop what a server given by URL could not drop while it was down (it restarted as the run ended), once it
    answers again: waited for as a dropped session is (:func:`wait_for_server`), unless it already did not come
    back in time. What still cannot be dropped stays in :attr:`Server.leftovers`, for ``clean --run-id``."""
    if server.kind == "url" and server.leftovers and not server.waited_in_vain and wait_for_server(server):
        server.sweep()


__all__ = ["Classified", "DISK_FULL", "SERVER_FROZEN", "SERVER_GONE", "WORKER_KILLED", "between_sessions", "classify",
           "last_step", "sweep_when_back", "wait_for_server", "where_it_struck", "worker_killed"]
