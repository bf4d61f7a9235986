"""The fork server, in the app's interpreter: it imports once what every worker imports (SQLAlchemy, alembic,
Flask, Flask-SQLAlchemy, Flask-Migrate, the usual drivers, the worker itself), then forks one worker per request.

A worker started this way skips the ~0.5 s of CPU those imports cost, and shares the pages they filled with the
server and the run's other workers for as long as neither side writes to them (on the example app 37-40 MiB of a
worker's 66-70 MiB stayed shared). What makes it safe:

* Nothing of the app is imported here: each forked worker imports the app itself, after its own environment
  (``DATABASE_URL``, ``SQLALCHEMY_DATABASE_URI``) and working directory are in place, so an app that reads its
  database URL at import time reads its own worker's.
* The server starts in the workers' working directory with their environment minus those two variables, so a
  library reads the same environment at import as in a worker started on its own. It runs no thread, opens no
  connection and holds no file of a worker's (it closes a request's descriptors as soon as it has forked).
* Below the oldest stack the worker supports, or if one of the imports fails, it says ``{"ready": false}`` and
  exits: the parent then starts workers as separate processes, which report the problem as they always did.

The parent (:mod:`harness.run.forks`) talks to it over a ``SOCK_SEQPACKET`` socket: a request is one message
``{"env", "cwd"}`` carrying the worker's stdin, stdout and stderr; the answer is ``{"pid"}``; when a worker ends,
``{"exit": pid, "code": returncode}`` (negative: the signal that killed it, as :class:`subprocess.Popen` says).
The socket's end (the harness closed it, or died) ends the server. Standard library only until the imports.
"""
from __future__ import annotations

import array
import gc
import importlib
import importlib.util
import json
import os
import select
import signal
import socket
from typing import Any

from ..chain.app_stack import below_floor

#: imported once, before any fork; a module that is not installed is skipped (the drivers), one that fails to
#: import ends the server (the workers then start on their own and report it)
PRELOAD = ("harness.run.worker", "harness.run.serve", "flask", "flask_sqlalchemy", "flask_migrate", "alembic.command",
           "alembic.autogenerate", "alembic.operations", "alembic.runtime.migration")
PRELOAD_IF_INSTALLED = ("psycopg2", "pymysql", "MySQLdb")
_FDS = 3  # stdin, stdout, stderr


def main(fd: int) -> int:
    """Serve on the socket ``fd``: the server ends when the harness closes the socket, and this returns only in
    each forked child, which then is the worker (its return value is the worker's exit code), or when the server
    cannot serve (0)."""
    sock = socket.socket(fileno=fd)
    problem = below_floor() or _preload()
    if problem is not None:
        _send(sock, {"ready": False, "why": problem})
        return 0
    from . import worker

    # no PR_SET_PDEATHSIG here: it follows the thread that started this process, and that thread of the harness may
    # end long before the run does; the socket's end says that the harness is gone. Each forked worker sets it
    # (worker.main): its parent is this process's only thread, so it ends with this server.
    gc.collect()
    if hasattr(gc, "freeze"):  # the preloaded objects move out of the collector's way: their pages stay shared
        gc.freeze()
    _send(sock, {"ready": True})
    child = _serve(sock)
    if child is None:  # the harness is done (or gone): end now, without tearing down what was imported
        os._exit(0)
    return worker.main()


def _preload() -> str | None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - any failure means: start workers the ordinary way
            return f"{name}: {type(exc).__name__}: {exc}"
    for name in PRELOAD_IF_INSTALLED:
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001
            return f"{name}: {type(exc).__name__}: {exc}"
    return None


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    try:
        sock.send(json.dumps(message).encode())
    except OSError:  # the harness is gone: the next read says so
        pass


def _serve(sock: socket.socket) -> dict[str, Any] | None:
    """Fork a worker per request and report each one's end, until the socket ends (None). In a forked child it
    returns that child's request, its stdio already in place."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    old_handler = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(sock, children)
        if sock not in readable:
            continue
        message, fds = _receive(sock)
        if message is None:
            return None
        pid = _fork(sock, message, fds, (wake_r, wake_w), old_handler)
        if pid == 0:
            return message
        children.add(pid)
        _send(sock, {"pid": pid})


def _receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(_FDS * array.array("i").itemsize))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[:len(payload) - (len(payload) % got.itemsize)])
            fds.extend(got)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds


def _fork(sock: socket.socket, request: dict[str, Any], fds: list[int], wake: tuple[int, int],
          old_handler: Any) -> int:
    """Fork; in the child, become the worker the request describes (its own session, stdio, directory and
    environment) and return 0; in the server, wait until the child has its own session, then return its pid."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, old_handler)
        os.setsid()  # as start_new_session: the harness stops the worker and what it started with one killpg
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in (*fds, *wake, ready_r):
            if fd > 2:
                os.close(fd)
        sock.close()
        os.close(ready_w)  # the server may answer now: a killpg of this pid reaches this process
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        return 0
    os.close(ready_w)
    for fd in fds:
        os.close(fd)
    os.read(ready_r, 1)  # end of file once the child closed its end (or died)
    os.close(ready_r)
    return pid


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _send(sock, {"exit": pid, "code": code})


__all__ = ["PRELOAD", "main"]
