"""``migration-harness merge``: the reports of several jobs (a nightly matrix: one job per Python and database
image) as one report with one verdict. Each database keeps its server version, so ``postgresql`` on 13 and on 17
stay two rows."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from .report import JSON_SCHEMA_VERSION
from ..results import DatabaseResult, RunResult


def load_report(path: str) -> RunResult:
    """A JSON report written by ``--json``; :class:`ConfigError` (exit 2) when it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the report {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a migration-harness JSON report (not JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("schema_version") != JSON_SCHEMA_VERSION or "databases" not in data:
        raise ConfigError(f"{path} is not a migration-harness JSON report (schema_version {JSON_SCHEMA_VERSION})")
    job = {"run_id": data.get("run_id", ""), "started_at": data.get("started_at", ""),
           "versions": data.get("versions", {})}
    return RunResult(ok=bool(data.get("ok")), exit_code=int(data.get("exit_code", 1)), head=data.get("head"),
                     heads=tuple(data.get("heads", ())), run_id=data.get("run_id", ""),
                     started_at=data.get("started_at", ""),
                     databases=tuple(DatabaseResult.from_dict(d) for d in data["databases"]),
                     revisions=tuple(data.get("revisions", ())), baseline=data.get("baseline"),
                     merged_from=tuple(data.get("merged_from", ())) or (job,))


def merge(results: list[RunResult]) -> RunResult:
    """One run of every database of ``results``, in order; its exit code is what one run over all of them would
    have had (1 beats 3 beats 0), and a head that differs between jobs is listed once per value."""
    from ..run.runner import exit_code_for

    if not results:
        raise ConfigError("merge needs at least one report")
    databases = tuple(db for result in results for db in result.databases)
    heads = tuple(dict.fromkeys(h for result in results for h in result.heads))
    code = max((r.exit_code for r in results if r.exit_code not in (0, 1, 3)), default=exit_code_for(databases))
    return RunResult(ok=code == 0, exit_code=code, head=heads[0] if len(heads) == 1 else ",".join(heads),
                     heads=heads, databases=databases, run_id="+".join(r.run_id for r in results),
                     started_at=min((r.started_at for r in results if r.started_at), default=""),
                     merged_from=tuple(job for r in results for job in r.merged_from),
                     revisions=next((r.revisions for r in results if r.revisions), ()),
                     baseline=next((r.baseline for r in results if r.baseline), None))


__all__ = ["load_report", "merge"]
