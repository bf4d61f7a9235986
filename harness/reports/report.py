"""Results to text (for people) and JSON (for CI systems: a stable contract, documented in docs/reports.md)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from dataclasses import replace
from typing import Any, TextIO

import click

from ..config import DatabaseSettings
from ..chain.app_stack import installed_versions
from ..results import ERROR, FAILED, PASSED, SKIPPED, CheckResult, DatabaseResult, RunResult

JSON_SCHEMA_VERSION = 1
SLOWEST_STEPS = 3
_COLOURS = {PASSED: "green", FAILED: "red", ERROR: "red", SKIPPED: "yellow"}


def _status(status: str) -> str:
    return click.style(f"{status:<7}", fg=_COLOURS.get(status), bold=status in (FAILED, ERROR))


def check_line(dialect: str, check: CheckResult, width: int = 24) -> str:
    """``sqlite      upgrade                  passed   8 revisions applied…``: one line per check (``upgrade[users]``
    on the bind ``users`` of a multi-database app); ``width``: the name's column."""
    where = f" at {check.revision}" if check.revision and check.status != PASSED else ""
    return f"{dialect:<11} {check.label:<{width}} {_status(check.status)}{where}  {check.message}".rstrip()


def difference_lines(check: CheckResult) -> list[str]:
    """One line per difference, then one per ignored difference with the rule's reason."""
    lines = [f"{'':<12}- {d.get('text') or json.dumps(d, sort_keys=True)}" for d in check.differences]
    lines += [click.style(f"{'':<12}~ ignored: {d.get('text')} ({d.get('reason')})", dim=True) for d in check.ignored]
    return lines


class TextReporter:
    """Prints each check as it finishes, then a summary per database."""

    def __init__(self, out: TextIO | None = None, verbose: bool = False, quiet: bool = False,
                 steps: bool | None = None) -> None:
        self.out = out
        self.verbose = verbose
        self.quiet = quiet  # -q: nothing but the verdict (printed by the caller)
        # a line per migration step as it starts: in CI logs (not a terminal), or with -v
        stream = out or sys.stdout
        self.steps = (verbose or not stream.isatty()) if steps is None else steps
        self._lock = threading.Lock()  # databases report from their own threads: whole lines only
        self.finished: list[DatabaseResult] = []  # kept for a report of what ran when the run is interrupted
        self.checks_seen: dict[str, list[CheckResult]] = {}

    def _echo(self, line: str) -> None:
        if self.quiet:
            return
        with self._lock:
            click.echo(line, file=self.out, color=color_wanted())

    def database_started(self, settings: DatabaseSettings) -> None:
        source = "server URL" if settings.url else ("temporary file" if settings.dialect == "sqlite"
                                                    else f"container {settings.image}")
        self._echo(click.style(f"{settings.dialect:<11} {'':<24} starting ({source})", dim=True))

    def step_started(self, dialect: str, step: dict[str, Any]) -> None:
        """``postgresql  upgrade                  up 7/33  ab12cd3 add index on posts``"""
        if not self.steps:
            return
        where = f"{step.get('index', '?')}/{step.get('total', '?')}"
        check = (step.get("check") or "") + (f"[{step['bind']}]" if step.get("bind") is not None else "")
        self._echo(f"{dialect:<11} {check:<24} {step['direction']:<4} {where:>7}  "
                   f"{step['revision']} {step.get('message') or ''}".rstrip())

    def sql_statement(self, dialect: str, statement: str) -> None:
        if self.verbose:
            self._echo(click.style(f"{dialect:<11} {'':<24} sql  {statement}", dim=True))

    def check_finished(self, dialect: str, check: CheckResult) -> None:
        with self._lock:
            self.checks_seen.setdefault(dialect, []).append(check)
        lines = [check_line(dialect, check), *difference_lines(check)]
        if self.verbose and check.traceback:
            lines += [f"{'':<12}| {line}" for line in check.traceback.rstrip().splitlines()]
        self._echo("\n".join(lines))

    def database_finished(self, result: DatabaseResult) -> None:
        with self._lock:
            self.finished.append(result)
        if result.message:
            self._echo(f"{result.dialect:<11} {'(database)':<24} {_status(result.status)}  {result.message}")

    def so_far(self, dialects: list[str]) -> tuple[DatabaseResult, ...]:
        """What ran before an interruption: every database that finished, and for the others the checks that
        had (the database itself ``error``: interrupted)."""
        with self._lock:
            done = {r.dialect: r for r in self.finished}
            partial = {d: tuple(c) for d, c in self.checks_seen.items()}
        return tuple(done.get(d) or DatabaseResult(d, "", "", ERROR, 0.0, partial.get(d, ()), "interrupted")
                     for d in dialects)


def color_wanted() -> bool | None:
    """``NO_COLOR`` (any value) turns colours off, ``FORCE_COLOR`` on; otherwise click decides (a terminal gets
    them, a pipe or a CI log does not)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return None


def verdict_text(result: RunResult) -> str:
    """The run's one verdict in words; a pass with a database skipped says what was not verified (``passed on
    sqlite, mysql; postgresql skipped: unavailable``), never "every check passed"."""
    if result.databases and all(db.status == SKIPPED for db in result.databases):
        return f"not ok (exit {result.exit_code}): every database was skipped, nothing was verified"
    if not result.ok:
        return f"not ok (exit {result.exit_code})"
    skipped = [db for db in result.databases if db.status == SKIPPED]
    binds = _unverified_binds(result)
    if binds:  # a multidb app's bind pinned to a dialect not among --db: not a pass of that database
        return ("passed, but " + ", ".join(f"bind {b}" for b in binds) + " not verified (every check of it "
                "skipped: pinned to a dialect not among --db)")
    if not skipped:
        return "every check passed"
    passed = ", ".join(db.dialect for db in result.databases if db.status != SKIPPED)
    why = "; ".join(f"{db.dialect} skipped: {db.message.split(':', 1)[0] or 'skipped'}" for db in skipped)
    return f"passed on {passed}; {why}"


def _unverified_binds(result: RunResult) -> list[str]:
    """A multi-database app's binds whose every check, on every database, was skipped."""
    seen: dict[str, bool] = {}
    for check in (c for db in result.databases for c in db.checks if c.bind is not None):
        seen[check.bind] = seen.get(check.bind, True) and check.status == SKIPPED  # type: ignore[index]
    return [bind for bind, unverified in seen.items() if unverified]


def verdict_line(result: RunResult) -> str:
    """The last line of the summary: the run's one verdict."""
    if result.since is not None and not result.since["checked"] and result.ok:
        text = f"nothing to check: no revision was added or changed since {result.since['ref']}"
    elif result.databases and all(db.status == SKIPPED for db in result.databases):
        text = f"not ok (exit {result.exit_code}): every database was skipped, nothing was verified"
    else:
        text = verdict_text(result)
    return click.style(text, fg="green" if result.ok else "red", bold=True)


def by_database(result: RunResult) -> str:
    """Each database's checks together, in the order of ``--db``: in a CI log the databases' lines interleave
    as they run, and this block reads one database at a time."""
    lines = []
    for db in result.databases:
        width = max([24] + [len(c.label) + 1 for c in db.checks])  # a bind's labels are longer: keep the column
        lines += ["", click.style(f"{db.dialect} ({db.server_version or db.backend})", bold=True)]
        for c in db.checks:
            shown = replace(c, message=f"the same error as {c.same_as}") if c.same_as else c
            lines.append(f"  {check_line('', shown, width).lstrip()}")
        if db.message:
            lines.append(f"  {'(database)':<{width}} {_status(db.status)}  {db.message}")
    return "\n".join(lines)


def summary(result: RunResult, checks: bool = False) -> str:
    """The verdict per database, one line each, and the overall one; ``checks``: each database's checks first
    (:func:`by_database`)."""
    lines = [by_database(result)] if checks else []
    start = f", baseline {result.baseline}: db.create_all() stamped at head" if result.baseline else ""
    lines += ["", click.style("Summary", bold=True) + (f" (head {result.head}{start})" if result.head else "")]
    for db in result.databases:
        failed = [c for c in db.checks if c.status in (FAILED, ERROR)]
        detail = ", ".join(f"{c.label}{' at ' + c.revision if c.revision else ''}"
                           + (f" (same as {c.same_as})" if c.same_as else "") for c in failed) or db.message
        fault = next((c for c in failed if c.fault), None)
        if fault:  # the environment, not the migrations: say it once, with what struck and where
            detail = f"{detail}: {fault.message}"
        version = f" [{db.server_version}, {db.backend}]" if db.server_version else f" [{db.backend}]"
        lines.append(f"  {db.dialect:<11} {_status(db.status)}{version} {db.duration_s:.1f}s"
                     + (f"  {detail}" if detail else ""))
        lines += [f"    retried: {text}" for text in db.retries]
        lines += [f"    left behind: {text}" for text in db.leftovers]
    if any(db.leftovers for db in result.databases):
        lines.append(f"  remove what was left behind once the server / Docker answers again: "
                     f"migration-harness clean --run-id {result.run_id}")
    if result.since is not None:
        checked, applied = result.since["checked"], result.since["applied"]
        lines.append(f"  since {result.since['ref']}: {len(checked)} revision(s) fully checked"
                     + (f" ({', '.join(checked)})" if checked else "")
                     + f", {len(applied)} only applied" + (f" (up to {applied[-1]})" if applied else ""))
    slowest = sorted(((step, db.dialect) for db in result.databases for step in db.steps
                      if not step.get("shared_with")),
                     key=lambda pair: pair[0]["duration_s"], reverse=True)[:SLOWEST_STEPS]
    if slowest:
        lines.append("  slowest steps: " + ", ".join(
            f"{dialect} {step['check']} {'up' if step['direction'] == 'up' else 'down'} {step['revision']} "
            f"{step['duration_s']:.2f}s" for step, dialect in slowest))
    lines.append(verdict_line(result))
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Python's and each installed package's version in the harness's own interpreter."""
    return installed_versions()


def version_fields(app_versions: dict[str, str]) -> dict[str, dict[str, str]]:
    """The JSON reports' ``versions`` (the app's side, as the worker that loaded the app saw it; the harness's own
    when it ran there) and ``harness_versions`` (the harness's own)."""
    own = versions()
    return {"versions": dict(app_versions) or own, "harness_versions": own}


def to_json(result: RunResult) -> dict:
    """The JSON report: ``RunResult.to_dict()`` plus the schema version, the harness's version and the versions
    of the stack it ran on."""
    from .._version import __version__

    report = {"schema_version": JSON_SCHEMA_VERSION, "harness_version": __version__, **result.to_dict(),
              **version_fields(result.versions)}
    if result.merged_from:  # the versions each job ran on; "versions" is then the merging machine's
        report["merged_from"] = [dict(job) for job in result.merged_from]
    return report


def write_json(result: RunResult, path: str) -> None:
    """Write the report atomically, so a CI step never reads half a file; ``-`` is standard output."""
    if path == "-":
        json.dump(to_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    write_atomically(path, json.dumps(to_json(result), indent=2) + "\n")


def write_atomically(path: str, text: str) -> None:
    """Write a report file whole or not at all, so a CI step never reads half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".harness-report-")
    # mkstemp makes the file 0600; a report is read by CI artifact uploaders and other users: the umask decides
    os.chmod(tmp, 0o666 & ~_umask())
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask (reading it means setting it: done under a lock, and set back at once)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
