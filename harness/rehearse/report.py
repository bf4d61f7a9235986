"""A rehearsal's result as text (for the release manager), JSON (for CI; fields in the README) and Markdown."""
from __future__ import annotations

import json
import sys

from ..config.redact import redact
from ..reports.report import version_fields, write_atomically
from .command import NOT_RUN, SAFE, UNPROVED, RehearseResult

_PROOF_MARK = {"fails": "FAILS  ", "passes": "ok     ", "unproved": "UNPROVED"}


def _step_lines(result: RehearseResult, verbose: bool = False) -> list[str]:
    width = max((len(s.revision) + len(s.message) + 3 for s in result.steps), default=0)
    lines = []
    for step in result.steps:
        label = f"{step.revision} ({step.message})" if step.message else step.revision
        if step.status == NOT_RUN:
            lines.append(f"  not run  {label}")
            continue
        mark = "ok     " if step.status == "passed" else "FAILED "
        lines.append(f"  {mark}  {label:<{width}}  {step.duration_s:7.3f}s  {step.rows} row(s)")
        if step.error:
            lines.append(f"           {step.error}")
        if step.estimate:
            lines.append(f"           at production's size: {step.estimate['text']}")
        for proof in step.proofs:
            lines.append(f"           proof {_PROOF_MARK[proof.decides]} {proof.text}")
            if verbose and proof.sql:
                lines.append(f"                          asked: {proof.sql}")
    return lines


def to_text(result: RehearseResult, verbose: bool = False) -> str:
    """The whole report; the verdict is the last line."""
    source, throwaway = result.source, result.throwaway
    at = ", ".join(source["revisions"]) or "base (empty alembic_version)"
    copied = sum(source["copied_rows"].values())
    lines = [f"production: {source['url']} ({source['server_version']}), read-only, at {at}",
             ("throwaway:  not started" if not throwaway["kind"] else
              f"throwaway:  {throwaway['kind']}" + (f" {throwaway['image']}" if throwaway.get("image") else "")
              + f" ({throwaway['server_version']})"),
             f"drift:      {result.drift_status}" + (f": {result.drift_error}" if result.drift_error else "")]
    lines += [f"  - {f.text}" for f in result.drift]
    lines += [f"  - ignored: {d['text']} ({d['reason']})" for d in result.drift_ignored]
    sample = f", {copied} row(s) copied (--sample-rows {source['sample_rows']})" if source["sample_rows"] else ""
    lines.append(f"pending:    {len(result.pending)} migration(s){sample}")
    lines += _step_lines(result, verbose)
    if result.schema_check is not None:
        check = result.schema_check
        lines.append(f"schema_matches_models: {check.status}  {check.message}".rstrip())
        lines += [f"  - {d.get('text')}" for d in check.differences]
    lines += [f"note: {n}" for n in result.notes]
    if verbose:
        lines.append(f"({source['statements']} read-only statement(s) sent to production; run {result.run_id}, "
                     f"{result.duration_s:.1f}s)")
    lines.append(verdict_line(result))
    lines += [f"  - {r}" for r in result.reasons]
    lines += [f"  - unproved: {u}" for u in result.unproved]
    return "\n".join(lines)


def verdict_line(result: RehearseResult) -> str:
    if result.verdict == SAFE:
        proved = sum(1 for s in result.steps if s.proof == "proved")
        return (f"verdict: SAFE: {len(result.pending)} pending migration(s) rehearsed on a copy of production"
                + (f", {proved} proved on production's rows" if proved else ""))
    if result.verdict == UNPROVED:
        return (f"verdict: UNPROVED: nothing failed, but {len(result.unproved)} thing(s) could not be proved "
                "on production's rows")
    unproved = f"; {len(result.unproved)} more thing(s) could not be proved" if result.unproved else ""
    return f"verdict: UNSAFE ({len(result.reasons)} reason(s){unproved})"


def to_json(result: RehearseResult) -> dict:
    from .._version import __version__

    return {**result.to_dict(), "harness_version": __version__, **version_fields(result.app_versions)}


def write_json(result: RehearseResult, path: str, hide: list[str] | None = None) -> None:
    """``-`` is standard output; a file is written whole or not at all; ``hide``: passwords to redact (none
    should be there: every URL in the result is already shown without its password)."""
    text = redact(json.dumps(to_json(result), indent=2) + "\n", hide or [])
    if path == "-":
        sys.stdout.write(text)
        return
    write_atomically(path, text)


def write_error(path: str, exit_code: int, message: str, hide: list[str] | None = None) -> None:
    """A rehearsal that stopped before its verdict still leaves its JSON report (``verdict`` ``error``), so a CI
    step that parses it learns why instead of finding no file."""
    from .._version import __version__

    report = {"schema_version": 1, "command": "rehearse", "verdict": "error", "exit_code": exit_code,
              "error": message, "harness_version": __version__}
    text = redact(json.dumps(report, indent=2) + "\n", hide or [])
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        write_atomically(path, text)
    except OSError:  # the error being reported already says what went wrong
        pass


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(result: RehearseResult) -> str:
    mark = {SAFE: "✅ safe", UNPROVED: "⚠️ unproved"}.get(result.verdict, "❌ unsafe")
    source = result.source
    lines = [f"## migration-harness rehearse: {mark}", "",
             f"production `{source['url']}` ({source['server_version']}) at "
             f"`{', '.join(source['revisions']) or 'base'}` · run `{result.run_id}`", ""]
    if result.reasons or result.unproved:
        lines += ["### Why", ""] + [f"- {_cell(r)}" for r in result.reasons]
        lines += [f"- unproved: {_cell(u)}" for u in result.unproved] + [""]
    if result.drift:
        lines += ["### Drift", ""] + [f"- {_cell(f.text)}" for f in result.drift] + [""]
    lines += ["### Pending migrations", "", "| revision | status | duration | rows | on production's rows | error |",
              "| --- | --- | --- | --- | --- | --- |"]
    for step in result.steps:
        proofs = "<br>".join(f"{p.decides}: {_cell(p.text)}" for p in step.proofs) or step.proof
        lines.append(f"| `{step.revision}` {_cell(step.message)} | {step.status} | {step.duration_s:.3f}s | "
                     f"{step.rows} | {proofs} | {_cell(step.error or '')} |")
    if result.schema_check is not None:
        lines += ["", f"`schema_matches_models`: {result.schema_check.status} {_cell(result.schema_check.message)}"]
    if result.notes:
        lines += [""] + [f"- note: {_cell(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_markdown(result: RehearseResult, path: str, hide: list[str] | None = None) -> None:
    write_atomically(path, redact(to_markdown(result), hide or []))
