"""``migration-harness compat``: on each database (at once), a scratch database brought to the previous release's
head by the previous release's own migrations and filled with rows; then the new revisions one at a time, the
previous release's code exercised after each and the new release's before and after each (:mod:`.classify`)."""
from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..backends import get_backend
from ..run.clean import registered_run
from ..config import DatabaseSettings, RunConfig
from ..errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNAVAILABLE, ConfigError, DatabaseUnavailable
from ..run.process import WorkerOutcome, reset_cancel, run_worker
from ..config.redact import redact, secrets_of
from ..run.runner import History, _in_threads, _spec, preflight
from .classify import SCHEMA_FIRST, RevisionVerdict, classify, deploy_problems
from .exercise import Failure
from .release import PreviousRelease, previous_migrations, previous_release

#: rows per table on the previous head before the new revisions run
DEFAULT_ROWS = 5
#: the smoke command's output kept in a failure (its end: where the failures are summed up)
SMOKE_TAIL = 3000


@dataclass(frozen=True)
class CompatOptions:
    """What ``compat`` adds to the run settings."""

    previous: str | None = None
    previous_path: str | None = None
    previous_python: str | None = None
    previous_tests: str | None = None
    order: str = SCHEMA_FIRST
    rows: int = DEFAULT_ROWS


@dataclass(frozen=True)
class CompatDatabase:
    dialect: str
    backend: str
    server_version: str = ""
    #: ``ok`` (every new revision deployable in the order), ``failed``, ``error`` (could not be established),
    #: ``skipped``
    status: str = "ok"
    message: str = ""
    revisions: tuple[RevisionVerdict, ...] = ()
    #: operations that fail already where they cannot be blamed on a new revision: the previous release on its
    #: own head, the new release on its own head; what they cover is not proved either way
    baseline: tuple[Failure, ...] = ()
    problems: tuple[str, ...] = ()
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "backend": self.backend, "server_version": self.server_version,
                "status": self.status, "message": self.message, "duration_s": round(self.duration_s, 3),
                "revisions": [r.to_dict() for r in self.revisions], "problems": list(self.problems),
                "baseline": [f.to_dict() for f in self.baseline]}


@dataclass(frozen=True)
class CompatResult:
    previous: dict[str, Any]
    order: str
    revisions: tuple[dict[str, Any], ...]
    databases: tuple[CompatDatabase, ...]
    exit_code: int
    run_id: str
    started_at: str
    python: str | None = None
    previous_python: str | None = None


def compat(config: RunConfig, options: CompatOptions, say: Callable[[str], None] | None = None) -> CompatResult:
    """Classify every revision of the working tree that the previous release does not have, on every database."""
    say = say or (lambda text: None)
    run_id = config.run_id or ""
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    reset_cancel()
    with registered_run(run_id), previous_release(config.cwd, options.previous, options.previous_path,
                                                   run_id) as release:
        old_config = dataclasses.replace(
            config, cwd=release.cwd, migrations=previous_migrations(config.migrations, config.cwd, release),
            python=options.previous_python or config.python, from_revision=None, to_revision=None)
        new_history, old_history = _preflights(config, old_config, run_id)
        new_revisions = _new_revisions(old_history, new_history, release)
        say(f"previous release {release.label}: head {', '.join(old_history.heads)}; "
            f"{len(new_revisions)} new revision(s)")
        if new_revisions:
            jobs = [lambda s=s: _compat_database(s, config, old_config, release, options, new_revisions, run_id, say)
                    for s in config.databases]
            databases = tuple(_in_threads(jobs, "compat"))
        else:
            databases = tuple(CompatDatabase(s.dialect, _kind(s), message="no new revision") for s in config.databases)
    result = CompatResult({**release.to_dict(), "head": ",".join(old_history.heads)}, options.order,
                          tuple({"revision": r.revision, "message": r.message} for r in new_revisions),
                          databases, EXIT_OK, run_id, started_at, config.python, old_config.python)
    return dataclasses.replace(result, exit_code=_exit_code(databases))


def _preflights(config: RunConfig, old_config: RunConfig, run_id: str) -> tuple[History, History]:
    """Both releases' apps loaded at once (each a worker of its own); the working tree's error is said first."""
    def attempt(which: RunConfig) -> tuple[History | None, Exception | None]:
        try:
            return preflight(which, run_id), None
        except Exception as exc:  # noqa: BLE001 - raised below, in a fixed order
            return None, exc

    (new, new_error), (old, old_error) = _in_threads([lambda: attempt(config), lambda: attempt(old_config)],
                                                     "preflight")
    if new_error or old_error:
        raise new_error or old_error  # type: ignore[misc]
    assert new is not None and old is not None
    return new, old


def _kind(settings: DatabaseSettings) -> str:
    return "url" if settings.url else ("file" if settings.dialect == "sqlite" else "container")


def _new_revisions(old: History, new: History, release: PreviousRelease) -> list[Any]:
    """The working tree's revisions the previous release does not have, in the order they apply; the previous
    release's head must be in the working tree's history (else the chains diverged: nothing can be judged)."""
    new_ids = {r.revision for r in new.revisions}
    missing = [r.revision for r in old.revisions if r.revision not in new_ids]
    if missing:
        raise ConfigError(f"the previous release {release.label} has revision(s) the working tree does not "
                          f"({', '.join(missing[:5])}): the chains diverged (a rebase or a squash?), so no rolling "
                          "deploy from it can be judged")
    old_ids = {r.revision for r in old.revisions}
    return [r for r in new.revisions if r.revision not in old_ids]


def _exit_code(databases: tuple[CompatDatabase, ...]) -> int:
    """1 when a database found a revision that cannot be deployed (or could not finish for a reason of its own);
    else 3 when one could not be provided, or all were skipped; else 0."""
    if any(d.status == "failed" or (d.status == "error" and not d.message.startswith("unavailable"))
           for d in databases):
        return EXIT_CHECK_FAILED
    if any(d.status == "error" for d in databases) or all(d.status == "skipped" for d in databases):
        return EXIT_UNAVAILABLE
    return EXIT_OK


class _Stop(Exception):
    """A database's walk cannot go on: its message says why (an ``error`` of that database)."""

    def __init__(self, message: str, status: str = "error") -> None:
        super().__init__(message)
        self.status = status


def _compat_database(settings: DatabaseSettings, config: RunConfig, old_config: RunConfig, release: PreviousRelease,
                     options: CompatOptions, revisions: list[Any], run_id: str,
                     say: Callable[[str], None]) -> CompatDatabase:
    started = time.monotonic()
    dialect = settings.dialect
    old: list[list[Failure]] = []
    new: list[list[Failure]] = []
    version = ""
    message, status = "", "ok"
    try:
        with get_backend(dialect).server(settings, run_id) as server:
            version = server.server_version
            with server.scratch_database() as url:
                walk = _Walk(config, old_config, release, options, dialect, url, run_id, say)
                try:
                    old.append(walk.previous("compat-prepare", "previous head"))
                    for index, revision in enumerate(revisions):
                        before, after = walk.step(revision, first=index == 0)
                        if before is not None:
                            new.append(before)
                        new.append(after)
                        old.append(walk.previous("compat-exercise", f"after {revision.revision}"))
                except _Stop as stop:
                    message, status = str(stop), stop.status
    except DatabaseUnavailable as exc:
        return CompatDatabase(dialect, _kind(settings), status="skipped" if config.skip_unavailable else "error",
                              message=f"unavailable: {exc.reason}", duration_s=time.monotonic() - started)
    verdicts = classify([(r.revision, r.message) for r in revisions], old, new)
    baseline = tuple(old[0] if old else ()) + tuple(new[-1] if len(new) == len(revisions) + 1 else ())
    problems = tuple(deploy_problems(verdicts, options.order))
    if status == "ok" and len(new) == len(revisions) + 1 and new[-1]:
        status, message = "error", ("the new release's own code fails on its own head (its models and migrations "
                                    "disagree; `migration-harness run` says where): " + _first(new[-1]))
    if status == "ok" and problems:
        status = "failed"
    return CompatDatabase(dialect, _kind(settings), version, status, message, tuple(verdicts), baseline, problems,
                          time.monotonic() - started)


def _first(failures: list[Failure]) -> str:
    f = failures[0]
    return f"{f.model}.{f.attribute} ({f.operation}): {f.error}" if f.attribute else f"{f.model} ({f.operation}): {f.error}"


class _Walk:
    """One database's scratch database, moved through the new revisions by workers of either release."""

    def __init__(self, config: RunConfig, old_config: RunConfig, release: PreviousRelease, options: CompatOptions,
                 dialect: str, url: str, run_id: str, say: Callable[[str], None]) -> None:
        self.config, self.old_config, self.release, self.options = config, old_config, release, options
        self.dialect, self.url, self.run_id, self.say = dialect, url, run_id, say

    def _run(self, config: RunConfig, mode: str, **extra: Any) -> WorkerOutcome:
        spec = {**_spec(config, self.url, self.dialect, mode, (), self.run_id), **extra}
        outcome = run_worker(spec, cwd=config.cwd, step_timeout_s=config.step_timeout_s,
                             secrets=secrets_of(self.url))
        outcome.raise_fatal()
        if outcome.timed_out_after_s is not None:
            raise _Stop(f"a worker ({mode}) stopped after {outcome.timed_out_after_s:g}s on {self.dialect} (hung, or "
                        "waiting for a lock)")
        if not outcome.finished:
            raise _Stop(f"a worker ({mode}) on {self.dialect}: {outcome.crash or 'stopped without an answer'}")
        return outcome

    def previous(self, mode: str, at: str) -> list[Failure]:
        """The previous release's code (its own checkout and interpreter) exercised; ``compat-prepare`` first
        brings the database to its head and fills it."""
        self.say(f"{self.dialect}: previous release {self.release.label} exercised {at}")
        outcome = self._run(self.old_config, mode, release="previous", at=at, rows=self.options.rows,
                            forbid_roots=[self.release.working_root], replacement_root=self.release.root)
        failed = outcome.of_kind("compat_step_failed")
        if failed:
            raise _Stop(f"the previous release's own migration {failed[0]['revision']} fails on {self.dialect}: "
                        f"{failed[0]['error']}")
        foreign = outcome.of_kind("foreign_modules")
        if foreign:
            raise _Stop("the previous release's worker imported code of the working tree, so it did not run the "
                        f"previous release: {', '.join(foreign[0]['modules'][:5])} (an editable install of the app "
                        "in --previous-python's environment? give an environment without it)")
        failures = _failures(outcome)
        if self.options.previous_tests:
            failures += self._smoke()
        return failures

    def step(self, revision: Any, first: bool) -> tuple[list[Failure] | None, list[Failure]]:
        """Apply one new revision with the new release; its code exercised before (first step only: after the
        previous step is the same schema) and after."""
        self.say(f"{self.dialect}: applying {revision.revision} ({revision.message})")
        outcome = self._run(self.config, "compat-step", release="new", apply=revision.revision,
                            exercise_before=first, before="previous head", at=f"after {revision.revision}")
        exercised = outcome.of_kind("exercise")
        failed = outcome.of_kind("compat_step_failed")
        if failed:
            raise _Stop(f"the new revision {revision.revision} ({revision.message}) fails on {self.dialect} over the "
                        f"previous release's head with rows: {failed[0]['error']}", "failed")
        before = [Failure.from_dict(f) for f in exercised[0]["failures"]] if first else None
        return before, [Failure.from_dict(f) for f in exercised[-1]["failures"]]

    def _smoke(self) -> list[Failure]:
        """The team's own smoke command, run in the previous release's checkout against the scratch database."""
        command = self.options.previous_tests or ""
        env = dict(os.environ, DATABASE_URL=self.url, SQLALCHEMY_DATABASE_URI=self.url)
        python = self.old_config.python or sys.executable  # the interpreter the previous release's worker ran in
        env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
        if self.old_config.python:
            env["VIRTUAL_ENV"] = os.path.dirname(os.path.dirname(python))
        try:
            done = subprocess.run(command, shell=True, cwd=self.release.cwd, env=env, capture_output=True,
                                  text=True, timeout=self.config.step_timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return [Failure("previous", "smoke", None, None,
                            f"`{command}` did not finish within {self.config.step_timeout_s:g}s")]
        if done.returncode == 0:
            return []
        output = redact((done.stdout + done.stderr).strip(), secrets_of(self.url))
        if len(output) > SMOKE_TAIL:
            output = "..." + output[-SMOKE_TAIL:]
        return [Failure("previous", "smoke", None, None, f"`{command}` exited with {done.returncode}: {output}")]


def _failures(outcome: WorkerOutcome) -> list[Failure]:
    exercised = outcome.of_kind("exercise")
    if not exercised:
        raise ConfigError("a worker ended without exercising the models (please report it)")
    return [Failure.from_dict(f) for f in exercised[-1]["failures"]]
