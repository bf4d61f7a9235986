"""Start a worker process, feed it its spec, read its events, and stop it if a step outlives the time limit."""
from __future__ import annotations

import collections
import contextlib
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
from typing import Any, Callable, Iterator

from ..backends.names import SCRATCH_PREFIX
from ..errors import ConfigError
from ..config.redact import redact
from .forks import Launched, bootstrap, launch

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


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


def worker_command(python: str | None = None) -> list[str]:
    """The command that starts a worker on its own: ``python`` (the app's interpreter), else this very one."""
    return [python or sys.executable, "-c", bootstrap("harness.run.floor")]


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
    """Run ``python -m harness.run.worker`` with ``spec``; no step (nor the app's start-up) may take longer than
    ``step_timeout_s``. The worker runs in its own process group so that stopping it stops its children too."""
    with worker_slot(), binds_directory(spec) as binds:
        return _run_worker({**spec, "bind_directory": binds}, cwd=cwd, step_timeout_s=step_timeout_s,
                           secrets=secrets, on_event=on_event)


@contextlib.contextmanager
def worker_slot() -> Iterator[None]:
    """Hold one of the run's worker slots (about one per core) while a worker works."""
    while not _SLOTS.acquire(timeout=_POLL_S):
        if _CANCEL.is_set():
            raise KeyboardInterrupt("the run was interrupted")
    try:
        yield
    finally:
        _SLOTS.release()


@contextlib.contextmanager
def binds_directory(spec: dict[str, Any]) -> Iterator[str]:
    """The directory for the app's other binds (harness.chain.binding): it belongs to this process, not the worker: a
    worker that is killed (a hung step, a crash, an interruption) cannot remove it, and it must go all the same."""
    binds = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{spec.get('run_id') or 'norun000'}_binds_")
    try:
        yield binds
    finally:
        shutil.rmtree(binds, ignore_errors=True)


def _run_worker(spec: dict[str, Any], *, cwd: str, step_timeout_s: float, secrets: list[str],
                on_event: Callable[[dict[str, Any]], None] | None) -> WorkerOutcome:
    worker = WorkerProcess(spec, cwd)
    outcome = WorkerOutcome()
    try:
        worker.send(None)  # the spec is all it gets
        worker.collect(outcome, step_timeout_s, on_event)
        worker.wait()
    except BaseException:
        worker.stop()
        raise
    finally:
        worker.join()
    worker.conclude(outcome, secrets)
    return outcome


class WorkerProcess:
    """A started worker: its spec written on stdin, its events read into a queue, its stderr's tail kept. A
    one-shot worker gets only the spec; a serving one (:mod:`harness.run.serve`) a line per session after it."""

    def __init__(self, spec: dict[str, Any], cwd: str) -> None:
        self.proc = launch(worker_command(spec.get("python")), cwd, _worker_env(spec["url"]))
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=40)
        self.ended = False  # its stdout closed: it exited, or was stopped
        self.readers = [threading.Thread(target=self._read_stdout, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self.readers:
            t.start()
        self._write(spec)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.events.put(json.loads(raw))
            except ValueError:
                self.stderr_lines.append(raw.decode("utf-8", "replace"))
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace"))

    def _write(self, line: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(line).encode() + b"\n")
        self.proc.stdin.flush()

    def send(self, line: dict[str, Any] | None) -> bool:
        """Hand the worker one more line (``None``: nothing more, close its stdin); False if it is gone."""
        try:
            if line is None:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            else:
                self._write(line)
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def collect(self, outcome: WorkerOutcome, step_timeout_s: float,
                on_event: Callable[[dict[str, Any]], None] | None, end: str = "done") -> bool:
        """Read events into ``outcome`` until the worker closes its stdout or says ``end`` (True then); stop it
        when nothing comes for ``step_timeout_s``. ``done`` always sets ``outcome.finished``."""
        deadline = time.monotonic() + step_timeout_s
        while True:
            if _CANCEL.is_set():
                _drain(self.events, outcome, on_event)  # what the worker said before the interruption still counts
                raise KeyboardInterrupt("the run was interrupted")
            try:
                event = self.events.get(timeout=min(_POLL_S, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                outcome.timed_out_after_s = step_timeout_s
                self.stop()
                return False
            if event is None:
                self.ended = True
                return False
            outcome.events.append(event)
            kind = event.get("event")
            if kind == "done":
                outcome.finished = True
            deadline = time.monotonic() + step_timeout_s
            if on_event:
                on_event(event)
            if kind == end and end != "done":
                return True

    def wait(self) -> None:
        """Let it exit by itself (it said ``done``), or stop it."""
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # e.g. a thread of the app that keeps the worker alive after "done"
            self.stop()

    def stop(self) -> None:
        self.ended = True
        _stop(self.proc)

    def close(self) -> None:
        """Let a serving worker end (its stdin closed), or stop it; then wait for its readers."""
        if self.send(None):
            self.wait()
        else:
            self.stop()
        self.join()

    def join(self) -> None:
        for t in self.readers:
            t.join(timeout=5)

    def conclude(self, outcome: WorkerOutcome, secrets: list[str]) -> None:
        """Say in ``outcome`` how a worker that did not finish ended: stopped by a signal from outside, or exited."""
        outcome.stderr_tail = redact("".join(self.stderr_lines).strip(), secrets)
        proc = self.proc
        if not outcome.finished and outcome.timed_out_after_s is None:
            if proc.returncode is None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # pragma: no cover - closed its stdout but lives on
                    self.stop()
            tail = " | ".join(line.strip() for line in outcome.stderr_tail.splitlines()[-6:] if line.strip())
            if proc.returncode is not None and proc.returncode < 0:  # not its own exit: a signal from outside
                outcome.killed_by = -proc.returncode
                outcome.crash = f"the worker was killed (signal {outcome.killed_by})"
            elif proc.returncode is None:  # its fork server was killed, and took it along (PR_SET_PDEATHSIG)
                outcome.killed_by = int(signal.SIGKILL)
                outcome.crash = "the worker was killed (signal 9) with the fork server that had started it"
            else:
                outcome.crash = f"the worker exited with code {proc.returncode}" + (f": {tail}" if tail else "")


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


def _stop(proc: Launched) -> None:
    """Kill the worker's whole process group, then reap it."""
    proc.kill_group()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass
