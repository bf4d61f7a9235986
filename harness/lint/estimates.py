"""``lint --sizes-from URL``: how long each pending step would hold its locks at production's size, and the lock
budget; and the lock-timeout check on what the steps were observed to lock.

Production's sizes come from its catalogue, read-only (:func:`harness.rehearse.source.read_sizes`); the steps are
measured on scratch databases of the database lint already uses (:mod:`harness.estimate`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..backends.base import Server, TableSize
from ..errors import ConfigError
from ..estimate.fit import CONSTANT, NOT_MEASURED, StepEstimate, budget_message, estimate_all, over_budget
from ..estimate.run import measure_steps
from ..estimate.settings import EstimateSettings
from .findings import ERROR, INFO, Finding, Rule

ESTIMATE_RULES: tuple[Rule, ...] = (
    Rule("lock-budget", ERROR, ("postgresql", "mysql", "sqlite"), "observed",
         "the step is estimated to hold a lock that blocks writes for longer than the lock budget at production's "
         "size (--lock-budget, default 5 s; needs --sizes-from)",
         "While it runs, every write to the table waits (and on PostgreSQL every query queued behind the lock); "
         "measured at 10k and 100k rows and extrapolated to production's row count from its catalogue.",
         "PostgreSQL: CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... NOT VALID then VALIDATE CONSTRAINT, a type change "
         "in steps (new column, backfill in batches, switch); MySQL / MariaDB: ALGORITHM=INSTANT / INPLACE, "
         "LOCK=NONE, or gh-ost / pt-online-schema-change; data changes in batches."),
    Rule("lock-estimate", INFO, ("postgresql", "mysql", "sqlite"), "observed",
         "how long the step would take, and hold its locks, at production's size (needs --sizes-from)",
         "A lock held for 10 ms on a test database can be held for minutes on production's table: the same "
         "statement, a thousand times the rows.",
         "Nothing, within the budget; see lock-budget otherwise."),
)

#: a migration or env.py that sets a lock timeout for the session (PostgreSQL, MySQL / MariaDB)
_SETS_TIMEOUT = re.compile(r"\b(lock_timeout|lock_wait_timeout)\b", re.IGNORECASE)
_PG_WAITING = ("SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")
_TIMEOUT_FIX = {
    "postgresql": "op.execute(\"SET lock_timeout = '5s'\") first in upgrade(), or in env.py before "
                  "context.run_migrations(): connection.execute(text(\"SET lock_timeout = '5s'\")); retry when it "
                  "times out",
    "mysql": "op.execute(\"SET SESSION lock_wait_timeout = 5\") first in upgrade(), or in env.py before "
             "context.run_migrations(); retry when it times out (the default waits a year)",
}


@dataclass(frozen=True)
class Production:
    """Production's tables' sizes, read from its catalogue (``--sizes-from``)."""

    url: str
    dialect: str
    server_version: str
    sizes: dict[str, TableSize]

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "dialect": self.dialect, "server_version": self.server_version,
                "table_sizes": {name: size.to_dict() for name, size in sorted(self.sizes.items())}}


def read_production(raw_url: str) -> Production:
    """Production's sizes at ``raw_url``, read-only (one read-only transaction, every statement a read)."""
    from ..config.redact import safe_url
    from ..rehearse.source import read_sizes

    try:
        dialect, version, sizes = read_sizes(raw_url)
    except ConfigError as exc:
        raise ConfigError(f"--sizes-from: {str(exc).removeprefix('--from ')}") from exc
    return Production(safe_url(raw_url), dialect, version, sizes)


def estimate_database(run_config: Any, server: Server, dialect: str, run_id: str, settings: EstimateSettings,
                      production: Production, revisions: list[Any],
                      say: Callable[[str], None]) -> tuple[list[StepEstimate], list[Finding], list[str]]:
    """Measure the pending ``revisions`` at each size on ``server``, estimate them at production's size: the
    estimates, their findings, and why some size could not be measured."""
    measured = measure_steps(run_config, server, dialect, run_id, settings.sizes, say)
    estimates = estimate_all(measured, [r.revision for r in revisions], production.sizes)
    paths = {r.revision: r.path for r in revisions}
    findings = []
    for estimate in estimates:
        file = paths.get(estimate.revision)
        if over_budget(estimate, settings.lock_budget_s):
            findings.append(Finding("lock-budget", ERROR, dialect, estimate.revision,
                                    budget_message(estimate, settings.lock_budget_s), "observed", file=file,
                                    table=estimate.table, details={"estimate": estimate.to_dict()}))
        elif estimate.kind not in (CONSTANT, NOT_MEASURED) or estimate.blocks_writes:
            findings.append(Finding("lock-estimate", INFO, dialect, estimate.revision, estimate.describe(), "observed",
                                    file=file, table=estimate.table, details={"estimate": estimate.to_dict()}))
    return estimates, findings, list(measured.errors)


def sets_lock_timeout(path: str | None) -> bool:
    """Whether the file at ``path`` sets a lock timeout (outside comments)."""
    if not path or not Path(path).is_file():
        return False
    text = "\n".join(line.split("#", 1)[0] for line in Path(path).read_text(encoding="utf-8").splitlines())
    return bool(_SETS_TIMEOUT.search(text))


def lock_timeout_findings(findings: list[Finding], observations: Iterable[tuple[str, dict[str, Any]]],
                          revisions: list[Any], env_py: str) -> list[Finding]:
    """``findings`` with the lock-timeout check applied: when env.py sets a lock timeout, the reminders are
    answered (dropped); else every step observed to wait for a lock that blocks the table (PostgreSQL SHARE and
    stronger; MySQL / MariaDB any ALTER of an existing table: a metadata lock everything queues behind) whose
    migration sets none gets ``no-lock-timeout``, once per database and revision."""
    if sets_lock_timeout(env_py):
        return [f for f in findings if f.rule != "no-lock-timeout"]
    paths = {r.revision: r.path for r in revisions}
    have = {(f.database, f.revision) for f in findings if f.rule == "no-lock-timeout"}
    out = list(findings)
    for dialect, observation in observations:
        revision = observation.get("revision", "")
        if (dialect, revision) in have or dialect not in _TIMEOUT_FIX or sets_lock_timeout(paths.get(revision)):
            continue
        tables = [t for t, info in observation.get("tables", {}).items()
                  if info.get("lock") in _PG_WAITING or info.get("rewritten") or info.get("alters")]
        if not tables:
            continue
        have.add((dialect, revision))
        out.append(Finding(
            "no-lock-timeout", INFO, dialect, revision,
            f"locks {', '.join(sorted(tables))} with no lock timeout set (neither env.py nor the migration sets "
            f"{'lock_timeout' if dialect == 'postgresql' else 'lock_wait_timeout'}): waiting behind one long query, "
            f"it blocks every query after it; fix: {_TIMEOUT_FIX[dialect]}",
            "observed", file=paths.get(revision), table=sorted(tables)[0]))
    return out
