"""How ``lint`` shows its findings: text for people, GitHub workflow commands (annotations on the pull request's
lines), Markdown for a job summary. The JSON form is :meth:`LintResult.to_dict`."""
from __future__ import annotations

from typing import Any

from .command import LintResult
from .findings import ERROR, INFO, WARNING, Finding

_LABEL = {ERROR: "error", WARNING: "warning", INFO: "info"}


def _where(finding: Finding) -> str:
    if not finding.file:
        return ""
    return f"{finding.file}:{finding.line}" if finding.line else finding.file


def _counts(result: LintResult) -> str:
    live = [f for f in result.findings if f.allowed is None]
    parts = [f"{sum(f.severity == s for f in live)} {s}{'s' if sum(f.severity == s for f in live) != 1 else ''}"
             for s in (ERROR, WARNING, INFO)]
    allowed = sum(f.allowed is not None for f in result.findings)
    return ", ".join(parts) + (f" ({allowed} allowed)" if allowed else "")


def text(result: LintResult, verbose: bool = False) -> str:
    """Per pending revision: what each database saw (duration, statements, rows), then its findings."""
    lines = []
    revisions = result.revisions
    names = ", ".join(d.dialect for d in result.databases)
    lines.append(f"lint: {len(revisions)} pending revision(s) on {names}; failing on {result.fail_on} and worse")
    observed = {(d.dialect, o["revision"]): o for d in result.databases for o in d.observations}
    for revision in revisions:
        rev = revision["revision"]
        lines.append(f"{rev} ({revision['message']})" if revision.get("message") else rev)
        for database in result.databases:
            obs = observed.get((database.dialect, rev))
            if obs and verbose:
                lines.append(f"    {database.dialect}: {obs['duration_s'] * 1000:.0f} ms, {obs['statements']} "
                             f"statement(s), {obs['rows_touched']} row(s) touched")
        for finding in (f for f in result.findings if f.revision == rev):
            if finding.severity == INFO and not verbose and finding.allowed is None:
                continue
            mark = "allowed" if finding.allowed is not None else _LABEL[finding.severity]
            where = f"  [{_where(finding)}]" if _where(finding) else ""
            lines.append(f"  {mark:<7} {finding.rule} ({finding.database}): {finding.message}{where}")
            if finding.allowed is not None:
                lines.append(f"          allowed: {finding.allowed}")
    for database in result.databases:
        if database.status != "ok" or database.message:
            lines.append(f"{database.dialect}: {database.status}: {database.message}")
    hidden = sum(f.severity == INFO and f.allowed is None for f in result.findings)
    if hidden and not verbose:
        lines.append(f"({hidden} info finding(s) not shown; -v shows them, and each step's duration and rows)")
    lines.append(verdict(result))
    return "\n".join(lines)


def verdict(result: LintResult) -> str:
    failing = result.failing
    if result.exit_code == 0:
        return f"lint passed: {_counts(result)}"
    if failing:
        return f"lint FAILED: {len(failing)} finding(s) at {result.fail_on} or worse; {_counts(result)}"
    return f"lint INCOMPLETE: {_counts(result)}"


def _escape(value: str, properties: bool = False) -> str:
    """GitHub workflow-command escaping (``%``, newlines; also ``:`` and ``,`` in properties)."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if properties:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github(result: LintResult) -> str:
    """One ``::error`` / ``::warning`` / ``::notice`` workflow command per finding not allowed, on the migration
    file's line, so the findings show on the pull request; then the verdict as a plain line."""
    kinds = {ERROR: "error", WARNING: "warning", INFO: "notice"}
    lines = []
    for finding in result.findings:
        if finding.allowed is not None:
            continue
        props = [f"title={_escape(f'{finding.rule} ({finding.database}, {finding.revision})', True)}"]
        if finding.file:
            props.insert(0, f"file={_escape(finding.file, True)}")
            if finding.line:
                props.insert(1, f"line={finding.line}")
        lines.append(f"::{kinds[finding.severity]} {','.join(props)}::{_escape(finding.message)}")
    for database in result.databases:
        if database.status == "error":
            lines.append(f"::error title=migration-harness lint ({database.dialect})::{_escape(database.message)}")
    lines.append(verdict(result))
    return "\n".join(lines)


def markdown(result: LintResult) -> str:
    rows = ["| revision | database | severity | rule | finding | where |", "| --- | --- | --- | --- | --- | --- |"]
    for finding in result.findings:
        severity = f"allowed ({finding.allowed})" if finding.allowed is not None else finding.severity
        message = finding.message.replace("|", "\\|")
        rows.append(f"| {finding.revision} | {finding.database} | {severity} | `{finding.rule}` | {message} | "
                    f"{_where(finding)} |")
    head = f"### migration-harness lint\n\n**{verdict(result)}**\n\n"
    return head + ("\n".join(rows) if result.findings else "No findings.") + "\n"


def to_json(result: LintResult) -> dict[str, Any]:
    return result.to_dict()
