"""Start a worker process, feed it its spec, read its events, and stop it if a step outlives the time limit."""
from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .backends.base import SCRATCH_PREFIX
from .errors import ConfigError
from .redact import redact

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


@dataclass
class WorkerOutcome:
    """Everything a worker said, and how it ended."""

    events: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False          # it sent "done"
    timed_out_after_s: float | None = None  # set when a step outlived the limit (the last "step" event names it)
    crash: str | None = None        # it died without "done": the tail of its stderr
    killed_by: int | None = None    # the signal that killed it (SIGKILL from outside, the out-of-memory killer)
    stderr_tail: str = ""

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    def raise_fatal(self) -> None:
        """Raise the worker's ``fatal`` (the app or its migrations cannot be used) as the :class:`ConfigError` it
        was in the worker, with its exit code; nothing when there was none."""
        fatal = self.of_kind("fatal")
        if fatal:
            error = ConfigError(fatal[0]["message"])
            error.exit_code = fatal[0].get("exit_code", error.exit_code)
            raise error


#: How a worker starts, in whichever interpreter runs the app (``--python``): the ``harness`` package is
#: registered from the directory it lies in without running its ``__init__`` (which imports the harness's own
#: dependencies) and without putting that directory on ``sys.path``. That directory may be the harness's own
#: site-packages (its Flask, SQLAlchemy, click, rich...) or a source checkout holding the repository's example
#: ``app`` package: neither may shadow the app's own packages. The worker sees the user's code, their packages and
#: the harness's code, nothing else.
_BOOTSTRAP = (
    "import sys, types; h = types.ModuleType('harness'); h.__path__ = [{package!r}]; h.__version__ = {version!r}; "
    "sys.modules['harness'] = h; import harness.floor as w; sys.exit(w.main())"
)
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def worker_command(python: str | None = None) -> list[str]:
    """The command that starts a worker: ``python`` (the app's interpreter), else this very one."""
    from . import __version__

    return [python or sys.executable, "-c", _BOOTSTRAP.format(package=_PACKAGE_DIR, version=__version__)]


def _worker_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = url
    env["SQLALCHEMY_DATABASE_URI"] = url
    env["PYTHONUNBUFFERED"] = "1"
    # a PYTHONPATH that names the harness's own checkout (to run it from source) would let the example app leak
    # into the user's process: the bootstrap imports the harness without it
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
            if p and os.path.realpath(p) != os.path.realpath(_PACKAGE_PARENT)]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        env.pop("PYTHONPATH", None)
    return env


#: Set when the run is interrupted: every worker still running is stopped, and its caller unwinds (dropping its
#: scratch database, removing its container) as for Ctrl-C in a single thread.
_CANCEL = threading.Event()
_POLL_S = 0.25
#: Workers running at once in this process (databases and their sessions run concurrently): about one per core,
#: so that a step's time limit measures the step, not a queue for the CPU.
_SLOTS = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


def cancel_workers() -> None:
    """Stop every worker of this process's run (the main thread got SIGINT / SIGTERM)."""
    _CANCEL.set()


def reset_cancel() -> None:
    _CANCEL.clear()


def run_worker(spec: dict[str, Any], *, cwd: str, step_timeout_s: float, secrets: list[str],
               on_event: Callable[[dict[str, Any]], None] | None = None) -> WorkerOutcome:
    """Run ``python -m harness.worker`` with ``spec``; no step (nor the app's start-up) may take longer than
    ``step_timeout_s``. The worker runs in its own process group so that stopping it stops its children too."""
    while not _SLOTS.acquire(timeout=_POLL_S):
        if _CANCEL.is_set():
            raise KeyboardInterrupt("the run was interrupted")
    # The directory for the app's other binds (harness.binding) belongs to this process, not the worker: a worker
    # that is killed (a hung step, a crash, an interruption) cannot remove it, and it must go all the same.
    binds = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{spec.get('run_id') or 'norun000'}_binds_")
    try:
        return _run_worker({**spec, "bind_directory": binds}, cwd=cwd, step_timeout_s=step_timeout_s,
                           secrets=secrets, on_event=on_event)
    finally:
        shutil.rmtree(binds, ignore_errors=True)
        _SLOTS.release()


def _run_worker(spec: dict[str, Any], *, cwd: str, step_timeout_s: float, secrets: list[str],
                on_event: Callable[[dict[str, Any]], None] | None) -> WorkerOutcome:
    proc = subprocess.Popen(
        worker_command(spec.get("python")), cwd=cwd, env=_worker_env(spec["url"]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    stderr_lines: collections.deque[str] = collections.deque(maxlen=40)

    def read_stdout() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                events.put(json.loads(raw))
            except ValueError:
                stderr_lines.append(raw.decode("utf-8", "replace"))
        events.put(None)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            stderr_lines.append(raw.decode("utf-8", "replace"))

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    outcome = WorkerOutcome()
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        deadline = time.monotonic() + step_timeout_s
        while True:
            if _CANCEL.is_set():
                _drain(events, outcome, on_event)  # what the worker said before the interruption still counts
                raise KeyboardInterrupt("the run was interrupted")
            try:
                event = events.get(timeout=min(_POLL_S, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                outcome.timed_out_after_s = step_timeout_s
                _stop(proc)
                break
            if event is None:
                break
            outcome.events.append(event)
            if event.get("event") == "done":
                outcome.finished = True
            deadline = time.monotonic() + step_timeout_s
            if on_event:
                on_event(event)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # e.g. a thread of the app that keeps the worker alive after "done"
            _stop(proc)
    except BaseException:
        _stop(proc)
        raise
    finally:
        for t in readers:
            t.join(timeout=5)
    outcome.stderr_tail = redact("".join(stderr_lines).strip(), secrets)
    if not outcome.finished and outcome.timed_out_after_s is None:
        tail = " | ".join(line.strip() for line in outcome.stderr_tail.splitlines()[-6:] if line.strip())
        if proc.returncode is not None and proc.returncode < 0:  # not its own exit: a signal from outside
            outcome.killed_by = -proc.returncode
            outcome.crash = f"the worker was killed (signal {outcome.killed_by})"
        else:
            outcome.crash = f"the worker exited with code {proc.returncode}" + (f": {tail}" if tail else "")
    return outcome


def _drain(events: queue.Queue[dict[str, Any] | None], outcome: WorkerOutcome,
           on_event: Callable[[dict[str, Any]], None] | None) -> None:
    """Hand on the events already received (an interrupted run's report holds the checks that had finished)."""
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        if event is None:
            return
        outcome.events.append(event)
        if on_event:
            on_event(event)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the worker's whole process group, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass
