"""The preflight: the app loaded and its revision graph read on a throwaway SQLite file, before any database is
started (a bad ``--app`` costs no container), and the spec every worker of a run starts from.

Standard library and the harness's own light modules only (no SQLAlchemy, no Docker client): a command starts its
preflight (:class:`Preflight`, in a thread of its own) before it imports what its databases need, so the app
loads while the parent is still importing.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..backends.names import DEFAULT_DRIVERS, SCRATCH_PREFIX
from ..chain.history import Revision
from ..chain.since import changed_files, since_split
from ..config import DatabaseSettings, RunConfig
from ..errors import ConfigError
from .clean import registered_run
from .process import WorkerOutcome, WorkerProcess, cancel_workers, reset_cancel, run_worker, worker_slot


@dataclass(frozen=True)
class History:
    """What the preflight learnt about the migrations: ordered revisions and heads."""

    revisions: tuple[Revision, ...]
    heads: tuple[str, ...]
    directory: str
    #: where Flask-SQLAlchemy resolves the app's relative ``sqlite:///name.db`` paths (its instance folder on 3.x)
    sqlite_base: str = ""
    #: where the app ran: Python's and its packages' versions in the app's interpreter
    versions: dict[str, str] = field(default_factory=dict)
    #: a multi-database app: bind key → the dialect its configured URL pins it to, or ``None`` (it follows the
    #: database under test); ``None`` for a single-database app
    binds: dict[str, str | None] | None = None


def _spec(config: RunConfig, url: str, dialect: str, mode: str, checks: tuple[str, ...], run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "app": config.app, "migrations": config.migrations, "url": url, "dialect": dialect,
            "mode": mode, "checks": list(checks), "ignore": [r.to_dict() for r in config.ignore],
            "from": config.from_revision, "to": config.to_revision,
            "allow_multiple_heads": config.allow_multiple_heads, "lock_timeout_s": config.lock_timeout_s,
            "echo_sql": config.echo_sql, "python": config.python, "drivers": _driver_urls(config),
            "baseline": config.baseline, "env": [list(pair) for pair in config.env], "multidb": config.multidb}


def _driver_urls(config: RunConfig) -> list[str]:
    """The start of each server database's URL (``postgresql+psycopg2://``): the worker checks that the app's
    environment has each driver (:mod:`harness.chain.app_stack`), so the preflight names a missing one before any
    database starts."""
    schemes = []
    for settings in config.databases:
        if settings.dialect == "sqlite":
            continue
        scheme = (settings.url or "").split("://")[0]
        if "+" not in scheme:
            scheme = f"{settings.dialect}+{DEFAULT_DRIVERS[settings.dialect]}"
        schemes.append(f"{scheme}://")
    return schemes


@dataclass
class KeptWorker:
    """The preflight's worker, kept loaded to serve SQLite's sessions (:mod:`harness.run.serve`): its app was
    loaded on ``url``, a file of the throwaway ``directories``, which go when it ends."""

    worker: WorkerProcess
    url: str
    pristine: bool
    directories: tuple[str, ...]
    #: set once its files are removed: the thread that started the worker lives until then (Linux kills a worker
    #: when the thread that started it ends: PR_SET_PDEATHSIG, see harness.run.worker)
    ended: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        """End the worker (its stdin closed, or stopped), then remove its files."""
        self.worker.close()
        self.remove_files()

    def remove_files(self) -> None:
        for directory in self.directories:
            shutil.rmtree(directory, ignore_errors=True)
        self.ended.set()


def preflight(config: RunConfig, run_id: str, multidb: bool = False) -> History:
    """Load the app and read the revision graph on a throwaway SQLite file, before any database is started,
    so a bad ``--app`` or a broken migrations directory costs no container and leaves nothing behind.
    ``multidb``: the caller checks multi-database apps (``run``), so a multidb env.py is described
    (:attr:`History.binds`), not refused as the single-database commands refuse it."""
    directory = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_preflight_")
    try:
        url = f"sqlite:///{Path(directory) / 'preflight.db'}"
        spec = {**_spec(config, url, "sqlite", "inspect", config.checks, run_id), "multidb_ok": multidb}
        outcome = run_worker(spec, cwd=config.cwd, step_timeout_s=config.step_timeout_s, secrets=[])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return _history(config, outcome)


def load_and_keep(config: RunConfig, run_id: str, multidb: bool) -> tuple[History, KeptWorker | None]:
    """:func:`preflight`, its worker then kept loaded (a single-database app's) to serve SQLite's sessions on its
    file: SQLite would otherwise load the app again, at once, on a file just like it."""
    directory = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_preflight_")
    binds = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_binds_")
    url = f"sqlite:///{Path(directory) / 'preflight.db'}"
    spec = {**_spec(config, url, "sqlite", "inspect", config.checks, run_id), "multidb_ok": multidb,
            "bind_directory": binds, "then_serve": True}
    kept: KeptWorker | None = None
    outcome = WorkerOutcome()
    try:
        with worker_slot():
            worker = WorkerProcess(spec, config.cwd)  # its stdin stays open: the sessions come on it
            try:
                ready = worker.collect(outcome, config.step_timeout_s, None, end="ready")
            except BaseException:
                worker.stop()
                worker.join()
                raise
        if ready:
            kept = KeptWorker(worker, url, bool(outcome.of_kind("ready")[0].get("pristine")), (directory, binds))
        else:  # it ended (a multi-database app, which SQLite's sessions load with its binds; a failure)
            worker.wait()
            worker.join()
            worker.conclude(outcome, [])
    finally:
        if kept is None:
            shutil.rmtree(directory, ignore_errors=True)
            shutil.rmtree(binds, ignore_errors=True)
    try:
        return _history(config, outcome), kept
    except BaseException:
        if kept is not None:
            kept.close()
        raise


def _served(settings: DatabaseSettings) -> bool:
    """Whether the preflight's worker can serve this database's sessions: SQLite on a file of the harness's own."""
    return settings.dialect == "sqlite" and not settings.url


def _history(config: RunConfig, outcome: WorkerOutcome) -> History:
    outcome.raise_fatal()
    history = outcome.of_kind("history")
    if not history:
        reason = outcome.crash or f"loading the app took longer than {config.step_timeout_s:g}s"
        raise ConfigError(f"cannot load the app {config.app}: {reason}")
    h = history[0]
    layout = h.get("multidb")
    return History(tuple(Revision.from_dict(r) for r in h["revisions"]), tuple(h["heads"]), h["directory"],
                   h.get("sqlite_base", ""), h.get("versions", {}), layout["binds"] if layout else None)


class Preflight:
    """The preflight (:func:`preflight`) in a thread of its own, while the servers start: the database jobs wait
    for it before their first worker, and report nothing before it passed (a bad ``--app`` is still one line)."""

    def __init__(self, config: RunConfig, run_id: str, multidb: bool = True, keep: bool = False) -> None:
        self.config = config
        self.multidb = multidb  # ``run`` checks multi-database apps; ``lint`` refuses them (see :func:`preflight`)
        #: ``run``: the preflight's worker goes on as SQLite's (:meth:`take`), when SQLite is one of the databases
        self.keep = keep and any(_served(d) for d in config.databases)
        self._kept: KeptWorker | None = None
        self._lock = threading.Lock()
        self.history: History | None = None
        self.extra: dict[str, Any] = {}  # what every worker's spec gets from it (``--since``: the applied ones)
        self.since: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._changed: frozenset[str] | ConfigError | None = None  # ``--since``: git asked once (changed_since)
        self._changed_lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(run_id,), name="preflight", daemon=True).start()

    def changed_since(self) -> frozenset[str]:
        """``--since``: the files added or changed since the ref (:func:`harness.chain.since.changed_files`), read
        from git once for the run: the runner asks it to know whether the databases can start with the preflight,
        the preflight to split the revisions, and both see the same files. Raises what git said (ConfigError)."""
        with self._changed_lock:
            if self._changed is None:
                try:
                    self._changed = frozenset(changed_files(self.config.since or "", self.config.cwd))
                except ConfigError as exc:
                    self._changed = exc
            if isinstance(self._changed, ConfigError):
                raise self._changed
            return self._changed

    def _run(self, run_id: str) -> None:
        kept = None
        try:
            if self.keep:
                self.history, kept = load_and_keep(self.config, run_id, self.multidb)
                with self._lock:
                    self._kept = kept
            else:
                self.history = preflight(self.config, run_id, multidb=self.multidb)
            if self.config.since:
                self.since = since_split(self.config.since, self.changed_since(), self.history.revisions)
                self.extra = {"since": self.config.since, "applied": self.since["applied"]}
        except BaseException as exc:  # noqa: BLE001 - raised in every thread that waits for it
            self.error = exc
        finally:
            self._done.set()
        if kept is not None:  # this thread started the kept worker: it must outlive it (KeptWorker.ended)
            kept.ended.wait()

    def wait_unless_failed(self) -> None:
        """Raise the preflight's error if it already failed (before a container is started for nothing)."""
        if self._done.is_set() and self.error is not None:
            raise self.error

    @property
    def nothing_to_check(self) -> bool:
        """``--since`` found no revision added or changed since the ref (known once the preflight has ended)."""
        return self.since is not None and not self.since["checked"]

    def join(self) -> None:
        """Wait for the preflight's thread to end (its worker stopped, its throwaway file removed)."""
        while not self._done.wait(0.2):
            pass

    def wait(self) -> dict[str, Any]:
        """Wait for the preflight; raise its error, or return what the workers' specs get from it."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.extra

    def take(self, settings: DatabaseSettings) -> KeptWorker | None:
        """The preflight's worker, still loaded, for the sessions of ``settings`` if it is the SQLite file database
        (once; ``None``: none was kept, or another database). Waits for the preflight; its error is not raised here
        (:meth:`wait` says it)."""
        if not self.keep or not _served(settings):
            return None
        self.join()
        with self._lock:
            kept, self._kept = self._kept, None
        return kept

    def release(self) -> None:
        """End the kept worker if no database took it (no SQLite session ran: ``--since`` with nothing new, an
        error, an interruption)."""
        self.join()
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()


@contextmanager
def started_preflight(config: RunConfig, run_id: str, multidb: bool = True, keep: bool = True) -> Iterator[Preflight]:
    """The run registered as alive (``clean`` leaves it alone) and its preflight started: the app loads from here
    on, while the caller imports and starts what the databases need (:func:`harness.run.runner.run` and
    :func:`harness.lint.command.lint` take it). ``multidb``, ``keep``: see :class:`Preflight`."""
    with registered_run(run_id):
        reset_cancel()
        gate = Preflight(config, run_id, multidb=multidb, keep=keep)
        try:
            yield gate
        except BaseException:  # e.g. interrupted before the runner took it: its worker stopped, its files removed
            cancel_workers()
            gate.join()
            raise
        finally:
            gate.release()


__all__ = ["History", "KeptWorker", "Preflight", "load_and_keep", "preflight", "started_preflight"]
