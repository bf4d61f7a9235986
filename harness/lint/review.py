"""``migration-harness sql``: the offline SQL of each pending revision on each database, written to files for a
DBA's review, and every revision whose SQL cannot be had that way (it reads the live database, or it holds bound
parameters instead of values). No database is started: rendering only compiles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..run.clean import registered_run
from ..config import RunConfig
from ..errors import EXIT_CHECK_FAILED, EXIT_OK
from ..reports.report import version_fields
from ..run.runner import _in_threads, preflight
from .command import _relative
from .findings import Finding
from .offline import offline_findings, offline_sql, write_sql_files
from .rules import sql_findings


@dataclass(frozen=True)
class ReviewDatabase:
    dialect: str
    files: tuple[str, ...]
    findings: tuple[Finding, ...]
    revisions: int

    def to_dict(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "revisions": self.revisions, "files": list(self.files),
                "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class ReviewResult:
    directory: str
    databases: tuple[ReviewDatabase, ...]
    exit_code: int
    run_id: str
    #: the app's side, as the worker that loaded the app saw it (``--python``); empty: the harness's own
    app_versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "command": "sql", "harness_version": __version__,
                **version_fields(self.app_versions),
                "ok": self.exit_code == EXIT_OK, "exit_code": self.exit_code, "run_id": self.run_id,
                "directory": self.directory, "databases": [d.to_dict() for d in self.databases]}


def review(config: RunConfig, directory: str) -> ReviewResult:
    """Render and write the SQL of ``config.from_revision`` → ``config.to_revision`` for every selected database."""
    run_id = config.run_id or ""
    with registered_run(run_id):
        history = preflight(config, run_id)  # a bad app or --from is a usage error before anything is written
        jobs = [lambda d=s.dialect: _one(config, d, directory, run_id) for s in config.databases]
        databases = tuple(_in_threads(jobs, "sql"))
    failed = any(d.findings for d in databases)
    return ReviewResult(directory, databases, EXIT_CHECK_FAILED if failed else EXIT_OK, run_id,
                        dict(history.versions))


#: what makes a revision's offline SQL unusable for review: it could not be rendered, or it cannot be run as is
_UNUSABLE = ("offline-sql-failed", "offline-sql-parameters")


def _one(config: RunConfig, dialect: str, directory: str, run_id: str) -> ReviewDatabase:
    events = offline_sql(config.app, config.migrations, dialect, config.from_revision, config.to_revision,
                         config.cwd, run_id, config.step_timeout_s, config.python)
    findings = offline_findings(dialect, events)
    for event in events:
        if event.get("sql") and not event.get("error"):
            findings += [f for f in sql_findings(dialect, event["revision"], event["sql"], event.get("file"))
                         if f.rule in _UNUSABLE]
    files = write_sql_files(directory, dialect, events)
    return ReviewDatabase(dialect, tuple(str(p) for p in files), tuple(_relative(findings, config.cwd)), len(events))


def text(result: ReviewResult) -> str:
    lines = []
    for database in result.databases:
        lines.append(f"{database.dialect}: {len(database.files)} file(s) in "
                     f"{result.directory.rstrip('/')}/{database.dialect}/")
        for finding in database.findings:
            where = f"  [{finding.file}:{finding.line}]" if finding.file and finding.line else ""
            lines.append(f"  {finding.rule} {finding.revision}: {finding.message}{where}")
    unusable = sum(len(d.findings) for d in result.databases)
    lines.append("offline SQL complete: every revision rendered on every database" if not unusable else
                 f"offline SQL INCOMPLETE: {unusable} finding(s) where the files cannot show or run what the "
                 "migration does")
    return "\n".join(lines)
