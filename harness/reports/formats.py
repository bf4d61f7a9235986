"""The run's verdict for CI systems and for pull requests: JUnit XML and Markdown (the JSON report is in
:mod:`harness.reports.report`). Each is built from a :class:`~harness.results.RunResult` alone; no reporter reaches back
into a run."""
from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Iterable
from xml.etree import ElementTree as ET

from .report import verdict_text, write_atomically
from ..results import ERROR, FAILED, PASSED, SKIPPED, CheckResult, DatabaseResult, RunResult

#: differences shown per failure in Markdown (all of them are in the JSON and JUnit reports)
MARKDOWN_DIFFERENCES = 5
_MARKS = {PASSED: "✅ passed", FAILED: "❌ failed", ERROR: "⚠️ error", SKIPPED: "⏭️ skipped"}


def _detail(check: CheckResult) -> str:
    """The body of a failure: revision, message and every difference, one per line."""
    lines = [f"revision: {check.revision}"] if check.revision else []
    lines.append(check.message)
    lines += [f"- {d.get('text', '')}" for d in check.differences]
    if check.traceback:
        lines += ["", check.traceback.rstrip()]
    return "\n".join(lines)


def _database_cases(db: DatabaseResult) -> Iterable[tuple[str | None, str, str, str, str, float]]:
    """(bind, name, status, message, detail, seconds) per check; a database that was never provided is one case."""
    if not db.checks and db.status in (ERROR, SKIPPED):
        yield None, "(database)", db.status, db.message, db.message, db.duration_s
        return
    for check in db.checks:
        yield check.bind, check.name, check.status, check.message, _detail(check), check.duration_s
    if db.message and db.status in (ERROR, SKIPPED):  # provided at first, then lost (e.g. a scratch database)
        yield None, "(database)", db.status, db.message, db.message, 0.0


def database_labels(result: RunResult) -> list[str]:
    """How each database is named in a report: its dialect, and its server version too when the run (a merged
    matrix) holds the same dialect more than once: ``postgresql 13.14``, ``postgresql 17.2``."""
    dialects = [db.dialect for db in result.databases]
    return [f"{db.dialect} {db.server_version.split()[-1]}" if dialects.count(db.dialect) > 1 and db.server_version
            else db.dialect for db in result.databases]


def to_junit(result: RunResult, started_at: dt.datetime | None = None) -> str:
    """One ``testsuite`` per database, one ``testcase`` per check (classname = database, name = check; a
    multi-database app's bind ``users``: classname ``postgresql.users``)."""
    # UTC without an offset: the strictest readers (Jenkins' schema) take no timezone in a timestamp
    when = (started_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    stamp = when.replace(microsecond=0, tzinfo=None).isoformat()
    root = ET.Element("testsuites", name="migration-harness")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for db, label in zip(result.databases, database_labels(result)):
        suite = ET.SubElement(root, "testsuite", name=label, timestamp=stamp, hostname=socket.gethostname())
        properties = ET.SubElement(suite, "properties")
        for key, value in (("server", db.server_version), ("backend", db.backend), ("run_id", result.run_id),
                           ("head", result.head or "")):
            ET.SubElement(properties, "property", name=key, value=value)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for bind, name, status, message, detail, seconds in _database_cases(db):
            classname = label if bind is None else f"{label}.{bind}"
            case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
            counts["tests"] += 1
            if status == FAILED:
                ET.SubElement(case, "failure", message=message, type="failed").text = detail
                counts["failures"] += 1
            elif status == ERROR:
                ET.SubElement(case, "error", message=message, type="error").text = detail
                counts["errors"] += 1
            elif status == SKIPPED:
                ET.SubElement(case, "skipped", message=message)
                counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{db.duration_s:.3f}")
        totals["time"] += db.duration_s
    for key, value in totals.items():
        root.set(key, f"{value:.3f}" if key == "time" else str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(result: RunResult, path: str, started_at: dt.datetime | None = None) -> None:
    write_atomically(path, to_junit(result, started_at))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(result: RunResult) -> str:
    """A table a person reads in a pull request (checks × databases), then each failure with its revision and
    its first differences."""
    verdict = ("✅ " if result.ok else "❌ ") + verdict_text(result)
    head = f" · head `{result.head}`" if result.head else ""
    lines = [f"## migration-harness: {verdict}", "", f"run `{result.run_id}`{head}", ""]
    names: list[str] = []
    for db in result.databases:
        names += [c.label for c in db.checks if c.label not in names]
    columns = [f"{db.dialect}" + (f" ({db.server_version})" if db.server_version else "") for db in result.databases]
    lines += ["| check | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name in names:
        cells = []
        for db in result.databases:
            check = next((c for c in db.checks if c.label == name), None)
            if check is None:
                cells.append(_MARKS.get(db.status, db.status) if db.message else "")
                continue
            where = f" at `{check.revision}`" if check.revision and check.status != PASSED else ""
            cells.append(f"{_MARKS.get(check.status, check.status)}{where}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    problems = [(db, c) for db in result.databases for c in db.checks if c.status in (FAILED, ERROR)]
    unavailable = [db for db in result.databases if db.message]
    if problems or unavailable:
        lines += ["", "### What failed", ""]
    for db in unavailable:
        lines.append(f"- **{db.dialect}** ({db.status}): {_cell(db.message)}")
    for db, check in problems:
        where = f" at `{check.revision}`" if check.revision else ""
        if check.same_as:  # the root cause is said once, at the check that met it first
            lines.append(f"- **{db.dialect} · {check.label}**{where}: the same error as `{check.same_as}`")
            continue
        lines.append(f"- **{db.dialect} · {check.label}**{where}: {_cell(check.message)}")
        shown = check.differences[:MARKDOWN_DIFFERENCES]
        lines += [f"  - {_cell(str(d.get('text', '')))}" for d in shown]
        if len(check.differences) > len(shown):
            lines.append(f"  - … and {len(check.differences) - len(shown)} more (see the JSON report)")
    return "\n".join(lines) + "\n"


def write_markdown(result: RunResult, path: str | None) -> None:
    """``path`` (if given), and appended to ``$GITHUB_STEP_SUMMARY`` when GitHub Actions sets it."""
    text = to_markdown(result)
    if path:
        write_atomically(path, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


__all__ = ["to_junit", "to_markdown", "write_junit", "write_markdown"]
