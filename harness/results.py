"""Result records: what a check found, per database, per run. Their ``to_dict`` forms are the JSON contract."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"
STATUSES = (PASSED, FAILED, SKIPPED, ERROR)


@dataclass(frozen=True)
class CheckResult:
    """One check on one database. ``revision`` names the revision a failure is about, when there is one."""

    name: str
    status: str
    revision: str | None = None
    message: str = ""
    differences: tuple[dict[str, Any], ...] = ()
    #: differences an ignore rule matched, each with its ``reason``: shown, never counted
    ignored: tuple[dict[str, Any], ...] = ()
    duration_s: float = 0.0
    #: the Python traceback when the check itself raised (an ``error`` verdict), else None
    traceback: str | None = None
    #: an earlier check on this database that failed at the same revision with the same error: the root cause
    same_as: str | None = None
    #: for an ``error``: the environment fault that ended the check (``server_gone``, ``server_frozen``,
    #: ``disk_full``, ``worker_killed``), not a defect of the migrations; None otherwise
    fault: str | None = None
    #: a multi-database app (``flask db init --multidb``): the bind key whose database the check ran on; ``None``
    #: for the main database (and for every check of a single-database app)
    bind: str | None = None

    @property
    def label(self) -> str:
        """How reports name the check: ``upgrade``, or ``upgrade[users]`` on the bind ``users``."""
        return f"{self.name}[{self.bind}]" if self.bind is not None else self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "revision": self.revision,
                "message": self.message, "duration_s": round(self.duration_s, 3),
                "differences": [dict(d) for d in self.differences], "ignored": [dict(d) for d in self.ignored],
                "traceback": self.traceback, "same_as": self.same_as, "fault": self.fault, "bind": self.bind}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(name=data["name"], status=data["status"], revision=data.get("revision"),
                   message=data.get("message", ""), differences=tuple(data.get("differences", ())),
                   ignored=tuple(data.get("ignored", ())), duration_s=float(data.get("duration_s", 0.0)),
                   traceback=data.get("traceback"), same_as=data.get("same_as"), fault=data.get("fault"),
                   bind=data.get("bind"))


@dataclass(frozen=True)
class DatabaseResult:
    """Every check on one database, and how that database was provided."""

    dialect: str
    backend: str
    server_version: str
    status: str
    duration_s: float
    checks: tuple[CheckResult, ...] = ()
    message: str = ""
    #: every migration step run on this database: ``{"check", "direction", "revision", "duration_s", "passed"}``
    steps: tuple[dict[str, Any], ...] = ()
    #: what could not be removed (the server or Docker was gone): ``migration-harness clean --run-id`` removes it
    leftovers: tuple[str, ...] = ()
    #: sessions run again on a fresh scratch database after the server dropped them and came back, and why
    retries: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatabaseResult:
        return cls(dialect=data["dialect"], backend=data.get("backend", ""), server_version=data.get("server_version", ""),
                   status=data["status"], duration_s=float(data.get("duration_s", 0.0)),
                   checks=tuple(CheckResult.from_dict(c) for c in data.get("checks", ())),
                   message=data.get("message", ""), steps=tuple(data.get("steps", ())),
                   leftovers=tuple(data.get("leftovers", ())), retries=tuple(data.get("retries", ())))

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "backend": self.backend, "server_version": self.server_version,
                "status": self.status, "duration_s": round(self.duration_s, 3), "message": self.message,
                "checks": [c.to_dict() for c in self.checks], "steps": [dict(s) for s in self.steps],
                "leftovers": list(self.leftovers), "retries": list(self.retries)}


@dataclass(frozen=True)
class RunResult:
    """The verdict of one run over every selected database."""

    ok: bool
    exit_code: int
    head: str | None
    heads: tuple[str, ...] = ()
    databases: tuple[DatabaseResult, ...] = field(default_factory=tuple)
    #: scratch databases of this run are named ``mharness_<run_id>_<n>``; containers carry it as a label
    run_id: str = ""
    #: when the run started, UTC, ISO 8601
    started_at: str = ""
    #: a merged report's jobs: ``{"run_id", "started_at", "versions"}`` each (``migration-harness merge``)
    merged_from: tuple[dict[str, Any], ...] = ()
    #: why the run stopped before a verdict (exit 2 usage error, 130 interrupted), else None
    error: str | None = None
    #: the history, base first: ``{"revision", "down_revisions", "message"}`` each (the HTML report draws it)
    revisions: tuple[dict[str, Any], ...] = ()
    #: Python's and the app's packages' versions where the app ran (the worker, in the app's interpreter)
    versions: dict[str, str] = field(default_factory=dict)
    #: ``--since``: ``{"ref", "applied": [revision, ...], "checked": [revision, ...]}``, base first
    since: dict[str, Any] | None = None
    #: what the chain was checked from (``--baseline``): None, an empty database; ``"create-all"``
    baseline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"ok": self.ok, "exit_code": self.exit_code, "run_id": self.run_id, "started_at": self.started_at,
                "head": self.head, "heads": list(self.heads), "error": self.error,
                "revisions": [dict(r) for r in self.revisions], "baseline": self.baseline,
                "databases": [d.to_dict() for d in self.databases]}
        if self.since is not None:
            data["since"] = {"ref": self.since["ref"], "applied": list(self.since["applied"]),
                             "checked": list(self.since["checked"])}
        return data


_SCRATCH_NAME = re.compile(r"mharness_[0-9a-f]{8}_[0-9]+")


def link_root_causes(checks: list[CheckResult], dialect: str) -> list[CheckResult]:
    """Say a root cause once: a check that failed at the same revision with the same database error as an earlier
    one (the stairway and the data run stopping where the upgrade did) points back to it (``same_as``), within
    the same database of a multi-database app (each bind's chain is its own)."""
    marker = f" failed on {dialect}: "
    first: dict[tuple[str | None, str, str], str] = {}
    out = []
    for check in checks:
        if check.status in (FAILED, ERROR) and check.revision and marker in check.message:
            # each session has its own scratch database, whose name MySQL puts in its errors
            key = (check.bind, check.revision, _SCRATCH_NAME.sub("mharness_", check.message.split(marker, 1)[1]))
            if key in first:
                check = replace(check, same_as=first[key])
            else:
                first[key] = check.label
        out.append(check)
    return out


def database_status(checks: tuple[CheckResult, ...] | list[CheckResult]) -> str:
    """A database failed if any check failed; it is in error if a check could not run to a verdict."""
    statuses = {c.status for c in checks}
    if FAILED in statuses:
        return FAILED
    if ERROR in statuses:
        return ERROR
    return PASSED
