"""Every session of one database through one worker: the app is loaded once (:mod:`harness.run.serve`), each
session gets the scratch database made fresh again. Isolation stays as with a worker per session: a session
that fails, crashes or outlives the step limit ends only its own checks, and a worker that died or was stopped
is replaced by a fresh one (on a fresh database) for the sessions after it.

``--since``: the revisions that existed at the ref are the same in every session, so where the server copies a
database exactly (:meth:`harness.backends.Server.keep_as_template`) they are applied once, in a session of their own
with no checks, the database then kept as a template, and every session's fresh database made as its copy."""
from __future__ import annotations

import contextlib
from typing import Any, Callable

from ..backends import Server
from .process import WorkerOutcome, WorkerProcess, binds_directory, worker_slot

OnEvent = Callable[[dict[str, Any]], None]


class DatabaseSessions:
    """Owns one database's scratch database(s) and its serving worker (used as a context manager: on exit the
    worker is stopped first, then the scratch databases are dropped)."""

    def __init__(self, server: Server, spec: dict[str, Any], cwd: str, step_timeout_s: float,
                 secrets: Callable[[str], list[str]]) -> None:
        self.server = server
        self.spec = spec  # the worker's spec without its url
        self.cwd = cwd
        self.step_timeout_s = step_timeout_s
        self.secrets = secrets
        self.url = ""
        self.used = False  # a session ran on the scratch database since it was made
        self.loads = 0  # app loads (workers started), for tests and the benchmark
        self.extra: dict[str, Any] = {}  # what every session gets from the preflight (``--since``)
        #: a multi-database app's binds under test on this server: bind key → its scratch database's URL; ``None``
        #: for a single-database app (see :meth:`use_binds`)
        self.bind_urls: dict[str, str] | None = None
        #: another session is planned after the next one: its fresh database is made while this one runs
        self.expect_more = False
        self._worker: WorkerProcess | None = None
        self._pristine = False
        self._failed_start: WorkerOutcome | None = None  # how :meth:`prestart`'s worker failed to get up
        #: ``--since``: the template every fresh database is copied from (``None``: none, or not yet tried)
        self.template: str | None = None
        self._template_tried = False
        self._carried: list[dict[str, Any]] = []  # the template's steps, reported with the first session's
        self._adopted = False  # the worker is the preflight's (:meth:`_adopt`): its spec is not :attr:`spec`
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> DatabaseSessions:
        self._binds = self._stack.enter_context(binds_directory(self.spec))
        self.url = self._stack.enter_context(self.server.scratch_database())
        self._stack.callback(self._close)  # runs before the scratch database is dropped
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:  # interrupted, or the server went away: no waiting for the worker
            self._discard()
        self._stack.close()

    def prestart(self, kept: Any = None) -> None:
        """Load the app now (while the preflight runs): the first session then finds it up, or how it failed.
        ``kept``: the preflight's worker, already loaded on a SQLite file (:meth:`adopt`), instead."""
        if kept is not None:
            self._adopt(kept)
        elif self._worker is None and self._failed_start is None:
            outcome = WorkerOutcome()
            if not self._start(outcome, None):
                self._failed_start = outcome

    def _adopt(self, kept: Any) -> None:
        """Serve the sessions with the preflight's worker, still loaded (:class:`harness.run.preflight.KeptWorker`):
        its app was loaded on a SQLite file of its own, which becomes this database's scratch database (made fresh
        for every session as any other), its files removed once the worker ended."""
        self.loads += 1
        self._worker, self.url, self._pristine = kept.worker, kept.url, kept.pristine
        self._adopted = True

        def close_then_remove() -> None:
            self._close()
            kept.remove_files()

        self._stack.callback(close_then_remove)

    def use_binds(self, keys: list[str]) -> None:
        """A multi-database app (known once the preflight read its env.py): each bind in ``keys`` gets a scratch
        database of its own on this server, made fresh with the main one for every session. A worker that
        :meth:`prestart` loaded without them is let go; the next session loads the app with them."""
        self.bind_urls = {key: self._stack.enter_context(self.server.scratch_database()) for key in keys}
        self._stack.callback(self._close)  # the worker ends before these are dropped too
        self._failed_start = None  # the app refused the multidb env.py without its binds' databases
        self._close()
        self.used = True  # whatever the prestarted app did at start-up: the next session starts from fresh ones

    def _renew(self) -> None:
        """Make every scratch database of this server fresh again; one that could not be dropped is replaced by a
        new one, and then the app is loaded again (on the new URLs)."""
        stale = False
        if not self.server.renew(self.url, self.template):  # could not be dropped: a new one, and an app loaded on it
            stale = True
            self.template = None  # the new one is empty: the sessions apply the revisions themselves again
            self.url = self._stack.enter_context(self.server.scratch_database())
        for key, url in (self.bind_urls or {}).items():
            if not self.server.renew(url):
                stale = True
                self.bind_urls[key] = self._stack.enter_context(self.server.scratch_database())  # type: ignore[index]
        if stale:
            self._discard()

    def run(self, session: dict[str, Any], on_event: OnEvent | None = None) -> WorkerOutcome:
        """One session (``{"checks": [...], ...}`` over the spec) on a fresh scratch database; its outcome as a
        one-shot worker's would be (``finished`` when the session ended normally)."""
        session = {**self.extra, **session}
        if self._failed_start is None and not self._template_tried and self.expect_more and session.get("applied"):
            self._template_tried = True
            self._make_template(session)
        if self._failed_start is not None:  # the app did not get up on this database: said as this session's
            outcome, self._failed_start = self._failed_start, None
            self.used = True
            return outcome
        if self._worker is None:  # an app loads on an empty database, as it always did: no copy from here on
            self.template = None
        if self.used:
            self._renew()
        self.used = True
        outcome = WorkerOutcome()
        if self._worker is None and not self._start(outcome, on_event):
            return outcome
        worker = self._worker
        assert worker is not None
        if self.template is not None:
            session["prepared"] = True  # the revisions before the checks' are in the copy already
            outcome.events.extend(self._carried)
            self._carried = []
        if self.expect_more:
            self.server.prepare_renewal(self.template)
        with worker_slot():
            ended = not self._send(session) or not worker.collect(outcome, self.step_timeout_s, on_event,
                                                                  end="session_done")
        if ended:  # it died, was stopped, or gave up (a fatal): a fresh one serves the next session
            self._discard(outcome)
        else:
            outcome.finished = True
            if not self._pristine:  # its start-up wrote to the database: the next session needs its own load
                self._close()
        return outcome

    def _make_template(self, session: dict[str, Any]) -> None:
        """Apply the revisions every session starts from (``session["applied"]``) once, in a session without
        checks, and keep that database as the template of the next ones. Not done where it could change a
        verdict: an app whose start-up writes to the database, a multi-database app, ``--baseline``; where it
        fails (a revision that does not apply: the first session applies them itself and says so as today)."""
        if self.bind_urls is not None or session.get("baseline") or self.spec.get("baseline"):
            return
        if self.used:
            self._renew()
            self.used = False
        outcome = WorkerOutcome()
        if self._worker is None and not self._start(outcome, None):
            self._failed_start = outcome  # said as the next session's outcome, as prestart's would be
            return
        worker = self._worker
        assert worker is not None
        if not self._pristine:  # its start-up wrote to the database: the next session runs on it, as without
            return
        self.used = True
        with worker_slot():
            ended = not self._send({**session, "checks": [], "apply_only": True}) or not worker.collect(
                outcome, self.step_timeout_s, None, end="session_done")
        if ended:
            self._discard()
            return
        applied = outcome.of_kind("applied")
        if not applied or not applied[0].get("ok"):
            return
        self.template = self.server.keep_as_template(self.url)
        if self.template is not None:
            self.used = False  # the scratch database is where every session starts: the first one runs on it
            self._carried = [e for e in outcome.events if e.get("event") == "step_done"]

    def _send(self, session: dict[str, Any]) -> bool:
        """Hand the worker a session; the preflight's worker started from its own spec, so it gets this one's too."""
        assert self._worker is not None
        return self._worker.send({**self.spec, "url": self.url, **session} if self._adopted else session)

    def _start(self, outcome: WorkerOutcome, on_event: OnEvent | None) -> bool:
        """Load the app on the scratch database; False (``outcome`` says why) when it did not get up."""
        self.loads += 1
        self._adopted = False
        with worker_slot():
            self._worker = WorkerProcess({**self.spec, "url": self.url, "mode": "serve", "bind_directory": self._binds,
                                          **({"bind_urls": self.bind_urls} if self.bind_urls is not None else {})},
                                         self.cwd)
            ready = self._worker.collect(outcome, self.step_timeout_s, on_event, end="ready")
        if not ready:
            self._discard(outcome)
            return False
        self._pristine = bool(outcome.of_kind("ready")[0].get("pristine"))
        outcome.events[:] = [e for e in outcome.events if e.get("event") not in ("history", "ready")]
        return True

    def _discard(self, outcome: WorkerOutcome | None = None) -> None:
        """Stop the worker (it ended, or its database is gone) and say in ``outcome`` how it ended."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if not worker.ended:
            worker.stop()
        else:
            worker.wait()
        worker.join()
        if outcome is not None:
            worker.conclude(outcome, self.secrets(self.url))

    def _close(self) -> None:
        """Let the worker end (its stdin closed), or stop it."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()


__all__ = ["DatabaseSessions"]
