"""Start a worker process: forked from a fork server in the app's interpreter (:mod:`harness.run.forkserver`) where
one can serve, else as a process of its own. Either way the caller gets a :class:`Launched`: the parent's ends of
the worker's stdin, stdout and stderr at once, its pid and exit status as soon as it has them.

One fork server serves every worker of one interpreter, working directory and environment (but the database URL):
a run's preflight and its databases' workers share it, a ``compat`` run's two releases have one each. It goes
when no worker of its own has been alive for ``_LINGER_S`` (so that a test session or a long-lived pytest process
does not collect them), when this process exits, or when this process dies (its socket ends). It is Linux only
(``fork`` beside macOS's system libraries is not safe) and ``HARNESS_FORKSERVER=0`` switches it off.
"""
from __future__ import annotations

import array
import atexit
import errno
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

#: a fork server with no worker alive for this long ends (the next worker starts a new one)
_LINGER_S = 10.0
#: how long a worker waits for its fork server to be ready before it starts as a process of its own
_READY_S = 60.0
_URL_VARS = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI")
#: How a worker or a fork server starts, in whichever interpreter runs the app (``--python``): the ``harness``
#: package is registered from the directory it lies in without running its ``__init__`` (which imports the
#: harness's own dependencies) and without putting that directory on ``sys.path``. That directory may be the
#: harness's own site-packages (its Flask, SQLAlchemy, click, rich...) or a source checkout holding the repository's
#: example ``app`` package: neither may shadow the app's own packages. The worker sees the user's code, their
#: packages and the harness's code, nothing else.
_BOOTSTRAP = (
    "import sys, types; h = types.ModuleType('harness'); h.__path__ = [{package!r}]; h.__version__ = {version!r}; "
    "sys.modules['harness'] = h; import {module} as w; sys.exit(w.main({argument}))"
)
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


def bootstrap(module: str, argument: str = "") -> str:
    """The ``python -c`` code that runs ``module.main(argument)`` of the harness in the app's interpreter."""
    from .._version import __version__

    return _BOOTSTRAP.format(package=_PACKAGE_DIR, version=__version__, module=module, argument=argument)


Key = tuple[str, str, tuple[tuple[str, str], ...]]
_LOCK = threading.Lock()
_SERVERS: dict[Key, "ForkServer"] = {}
_REFUSED: set[Key] = set()  # it said it cannot serve (below the floor, an import failed): no second try


def enabled() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("HARNESS_FORKSERVER", "1") != "0"


def launch(command: list[str], cwd: str, env: dict[str, str]) -> "Launched":
    """Start ``command`` (``python -c <the worker's bootstrap>``) in ``cwd`` with ``env`` and its own session: forked
    from the fork server of ``command[0]``, ``cwd`` and ``env`` when it can serve, else as a process of its own."""
    launched = Launched()
    server = _server_for(command[0], cwd, env) if enabled() else None
    if server is None:
        launched.spawn(command, cwd, env)
        return launched
    threading.Thread(target=launched.fork_or_spawn, args=(server, command, cwd, env), daemon=True,
                     name="harness-launch").start()
    return launched


def close_all() -> None:
    """End every fork server of this process (it is exiting)."""
    with _LOCK:
        servers = list(_SERVERS.values())
    for server in servers:
        server.close()


atexit.register(close_all)


def _forget_in_child() -> None:
    """This process was forked (multiprocessing, a test runner): the fork servers are its parent's, and the
    threads that read them did not come along. Start afresh, and let go of the parent's sockets."""
    global _LOCK
    _LOCK = threading.Lock()
    for server in list(_SERVERS.values()):
        server.sock.close()
    _SERVERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _server_for(python: str, cwd: str, env: dict[str, str]) -> ForkServer | None:
    """The running fork server for this interpreter, directory and environment, or a new one; None when one
    cannot serve. The caller owes a :meth:`ForkServer.done` for it."""
    base = {k: v for k, v in env.items() if k not in _URL_VARS}
    key: Key = (python, os.path.realpath(cwd), tuple(sorted(base.items())))
    with _LOCK:
        if key in _REFUSED:
            return None
        server = _SERVERS.get(key)
        if server is None:
            try:
                server = ForkServer(key, python, cwd, base)
            except OSError:  # no such interpreter: the worker's own start says so
                _REFUSED.add(key)
                return None
            _SERVERS[key] = server
        server.spawning += 1
        return server


class _Exit:
    """A forked worker's exit status, as its fork server reports it."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.known = threading.Event()
        self.orphan = False  # its fork server is gone: only /proc says when it has ended, not how

    def settle(self, code: int | None) -> None:
        self.code = code
        self.known.set()


class ForkServer:
    """A fork server process and the thread that reads what it says."""

    def __init__(self, key: Key, python: str, cwd: str, env: dict[str, str]) -> None:
        self.key = key
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [python, "-c", bootstrap("harness.run.forkserver", str(theirs.fileno()))],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True)
        except BaseException:
            self.sock.close()
            raise
        finally:
            theirs.close()
        self.ready = threading.Event()
        self.usable = False
        self.spawning = 0  # workers being started on it (under _LOCK)
        self.children: dict[int, _Exit] = {}
        self.idle_since = time.monotonic()
        self._pids: queue.Queue[tuple[int, _Exit] | None] = queue.Queue()
        self._request = threading.Lock()
        self.sock.settimeout(1.0)
        threading.Thread(target=self._read, daemon=True, name="harness-forkserver").start()

    def fork(self, env: dict[str, str], cwd: str, fds: list[int], given_up: Callable[[], bool]) -> tuple[int, _Exit] | None:
        """Fork a worker on ``fds`` (its stdin, stdout, stderr): its pid and exit status, or None (the caller starts
        it as a process of its own)."""
        waited = 0.0
        while not self.ready.wait(0.25):
            waited += 0.25
            if given_up():
                return None
            if waited >= _READY_S:  # its imports hang: no worker of this key waits for it again
                with _LOCK:
                    _REFUSED.add(self.key)
                self.close()
                return None
        if not self.usable:
            return None
        with self._request:
            try:
                self.sock.sendmsg([json.dumps({"env": env, "cwd": cwd}).encode()],
                                  [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            except OSError as exc:  # it died, or the environment is too large for one message
                if exc.errno == errno.EMSGSIZE:  # and will be for every worker of this key: no second try
                    with _LOCK:
                        _REFUSED.add(self.key)
                return None
            return self._pids.get()

    def done(self) -> None:
        """A worker's start on this server is over (forked or not)."""
        with _LOCK:
            self.spawning -= 1
            if not self.spawning and not self.children:
                self.idle_since = time.monotonic()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                self._linger()
                continue
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "ready" in message:
                self.usable = bool(message["ready"])
                if not self.usable:
                    with _LOCK:
                        _REFUSED.add(self.key)
                self.ready.set()
            elif "pid" in message:
                status = _Exit()
                with _LOCK:
                    self.children[message["pid"]] = status
                self._pids.put((message["pid"], status))
            elif "exit" in message:
                with _LOCK:
                    ended = self.children.pop(message["exit"], None)
                    if not self.spawning and not self.children:
                        self.idle_since = time.monotonic()
                if ended is not None:
                    ended.settle(message["code"])
        self._gone()

    def _linger(self) -> None:
        with _LOCK:
            idle = not self.spawning and not self.children and time.monotonic() - self.idle_since > _LINGER_S
        if idle:
            self.close()

    def _gone(self) -> None:
        """Its socket ended (it exited, was killed, or was closed): out of the registry; its workers still alive are
        orphans, whose end only /proc can tell; a worker still waiting for it starts on its own."""
        self._unregister()
        with _LOCK:
            orphans = list(self.children.values())
            self.children.clear()
        self.ready.set()
        self._pids.put(None)
        for orphan in orphans:
            orphan.orphan = True
        self._reap()
        self.sock.close()

    def close(self) -> None:
        """End it: its socket's end stops it (a worker it forked lives on until it is done)."""
        self._unregister()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reap()

    def _unregister(self) -> None:
        """No worker starts on it any more (the next one of its key starts a new server)."""
        with _LOCK:
            if _SERVERS.get(self.key) is self:
                del _SERVERS[self.key]

    def _reap(self) -> None:
        """Wait for it to end (it does on its socket's end), or kill it."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - it ends on its socket's end
            self.proc.kill()


class Launched:
    """A worker as its parent sees it, however it was started (the part of :class:`subprocess.Popen` the parent
    uses): the parent's ends of its pipes from the start, then its ``pid``; ``wait``, ``returncode`` and
    :meth:`kill_group`, which stops it and whatever it started."""

    def __init__(self) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.stdin = os.fdopen(in_w, "wb")
        self.stdout = os.fdopen(out_r, "rb")
        self.stderr = os.fdopen(err_r, "rb")
        self._theirs = [in_r, out_w, err_w]
        self.pid: int | None = None
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._popen: subprocess.Popen[bytes] | None = None
        self._exit: _Exit | None = None
        self._code: int | None = None  # it never started (stopped first), or could not
        self._killed = False

    @property
    def returncode(self) -> int | None:
        if self._popen is not None:
            return self._popen.returncode
        if self._exit is not None:
            return self._exit.code
        return self._code

    def spawn(self, command: list[str], cwd: str, env: dict[str, str]) -> None:
        """Start it as a process of its own (no fork server): raises as :class:`subprocess.Popen` does."""
        try:
            self._popen = subprocess.Popen(command, cwd=cwd, env=env, stdin=self._theirs[0], stdout=self._theirs[1],
                                           stderr=self._theirs[2], start_new_session=True)
        except OSError as exc:  # its stderr says why, as a worker's that could not start
            os.write(self._theirs[2], f"{command[0]}: {exc}\n".encode())
            raise
        finally:
            self._release_theirs()
        self.pid = self._popen.pid
        self._started.set()

    def fork_or_spawn(self, server: ForkServer, command: list[str], cwd: str, env: dict[str, str]) -> None:
        try:
            forked = server.fork(env, cwd, self._theirs, lambda: self._killed)
        finally:
            server.done()
        with self._lock:
            if forked is not None:
                self.pid, self._exit = forked
                self._release_theirs()
                self._started.set()
            elif self._killed:
                self._code = -signal.SIGKILL
                self._release_theirs()
                self._started.set()
            else:
                try:
                    self.spawn(command, cwd, env)
                except OSError:  # as a worker that could not start: its stderr says why
                    self._code = 1
                    self._started.set()
            if self._killed:
                self._kill_now()

    def _release_theirs(self) -> None:
        for fd in self._theirs:
            try:
                os.close(fd)
            except OSError:
                pass
        self._theirs = []

    def kill_group(self) -> None:
        """SIGKILL its process group (its own session: the worker and all it started), now or as soon as it has
        one."""
        with self._lock:
            self._killed = True
            if self._started.is_set():
                self._kill_now()

    def _kill_now(self) -> None:
        if self.pid is None or self.returncode is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit status once it has ended (None if its fork server is gone and cannot say); raises
        :class:`subprocess.TimeoutExpired` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        if not self._started.wait(left()):
            raise subprocess.TimeoutExpired("worker", timeout or 0.0)
        if self._popen is not None:
            return self._popen.wait(left())
        ended = self._exit
        if ended is None:
            return self._code
        while not ended.known.wait(0.05):
            if ended.orphan and not _alive(self.pid):
                ended.settle(None)
            elif deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("worker", timeout or 0.0)
        return ended.code


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


__all__ = ["ForkServer", "Launched", "bootstrap", "close_all", "enabled", "launch"]
