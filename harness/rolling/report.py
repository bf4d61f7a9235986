"""``compat``'s reports: the text for people, the JSON for CI (schema_version 1, fields only ever added)."""
from __future__ import annotations

from typing import Any

from .._version import __version__
from ..errors import EXIT_OK
from .classify import BREAKING, CODE_FIRST, CONTRACT, EXPAND, SPLIT_ADVICE, RevisionVerdict
from .command import CompatDatabase, CompatResult
from .exercise import Failure

SCHEMA_VERSION = 1

#: how an operation reads in a sentence: "Post.body is selected by Post.query"
_PHRASES = {
    "load": "loads {model} rows (query({model}), every mapped column)",
    "relationship": "loads {model}.{attribute} from a {model} row",
    "select": "selects {model}.{attribute} (query({model}.{attribute}))",
    "insert": "inserts a {model} with only what the model requires",
    "update": "updates {model}.{attribute}",
    "delete": "deletes a {model}",
}


def to_dict(result: CompatResult) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "command": "compat", "harness_version": __version__,
            "ok": result.exit_code == EXIT_OK, "exit_code": result.exit_code, "run_id": result.run_id,
            "started_at": result.started_at, "order": result.order, "previous": result.previous,
            "python": result.python, "previous_python": result.previous_python,
            "revisions": [dict(r) for r in result.revisions], "databases": [d.to_dict() for d in result.databases]}


def stopped(code: int, why: str, run_id: str) -> dict[str, Any]:
    """The report of a run that stopped before its verdict (bad input, an interruption)."""
    return {"schema_version": SCHEMA_VERSION, "command": "compat", "harness_version": __version__, "ok": False,
            "exit_code": code, "run_id": run_id, "error": why, "databases": []}


def describe(failure: Failure, label: str) -> str:
    """``release v1.4 selects Post.body (query(Post.body)): UndefinedColumn: column posts.body does not
    exist``."""
    who = f"release {label}" if failure.release == "previous" else "the new release"
    what = _PHRASES.get(failure.operation, failure.operation).format(model=failure.model,
                                                                    attribute=failure.attribute)
    if failure.operation == "smoke":
        return f"{who}'s smoke command fails: {failure.error}"
    if failure.operation == "insert" and failure.attribute:
        what += f" (column {failure.attribute})"
    return f"{who} {what}: {failure.error}"


def _revision_lines(verdict: RevisionVerdict, label: str, dialect: str, verbose: bool) -> list[str]:
    head = f"  {verdict.klass:<9} {verdict.revision}  {verdict.message}"
    lines = [head]
    if verdict.klass == EXPAND:
        if verdict.needed_by_new and verbose:
            lines.append(f"            the new release needs it: {describe(verdict.needed_by_new[0], label)}")
        return lines
    broke = verdict.breaks_previous
    lines.append(f"            breaks the running release: {describe(broke[0], label)} ({dialect})")
    for failure in broke[1:] if verbose else broke[1:3]:
        lines.append(f"            also: {describe(failure, label)}")
    if len(broke) > 3 and not verbose:
        lines.append(f"            ... and {len(broke) - 3} more operation(s) (-v lists them)")
    if verdict.klass == BREAKING:
        lines.append(f"            and the new release needs it: {describe(verdict.needed_by_new[0], label)}")
    else:
        lines.append("            the new release does not need it: run it once the previous release is gone")
    return lines


def database_text(database: CompatDatabase, label: str, verbose: bool) -> list[str]:
    lines = [f"{database.dialect}  {database.status}" + (f": {database.message}" if database.message else "")]
    for verdict in database.revisions:
        lines.extend(_revision_lines(verdict, label, database.dialect, verbose))
    for problem in database.problems:
        lines.append(f"  cannot deploy: {problem}")
    if database.baseline:
        lines.append(f"  not proved ({len(database.baseline)} operation(s) fail already on a release's own head, so "
                     "no revision can be judged by them):")
        for failure in database.baseline if verbose else database.baseline[:3]:
            lines.append(f"    {describe(failure, label)}")
    return lines


def text(result: CompatResult, verbose: bool = False) -> str:
    label = result.previous.get("ref") or "previous"
    lines = [f"compat: previous release {label} (head {result.previous.get('head')}), "
             f"{len(result.revisions)} new revision(s), {result.order} deploy"]
    for database in result.databases:
        lines.extend(database_text(database, label, verbose))
    if any(p for d in result.databases for p in d.problems):
        if result.order == CODE_FIRST:
            lines.append("advice: deploy schema-first instead (run the revisions the new release needs before it "
                         "rolls out), or " + SPLIT_ADVICE)
        else:
            lines.append("advice: " + SPLIT_ADVICE)
    elif (result.exit_code == EXIT_OK and result.order != CODE_FIRST
          and any(v.klass == CONTRACT for d in result.databases for v in d.revisions)):
        contracts = sorted({v.revision for d in result.databases for v in d.revisions if v.klass == CONTRACT})
        lines.append(f"plan: run the expand revisions, deploy, then {', '.join(contracts)} once the previous "
                     "release is gone")
    lines.append(verdict(result))
    return "\n".join(lines)


def verdict(result: CompatResult) -> str:
    counts = {k: sum(1 for d in result.databases for v in d.revisions if v.klass == k)
              for k in (EXPAND, CONTRACT, BREAKING)}
    word = "deployable" if result.exit_code == EXIT_OK else ("NOT deployable" if result.exit_code == 1 else "unknown")
    per = ", ".join(f"{d.dialect} {d.status}" for d in result.databases)
    return (f"compat {word} ({result.order}): {counts[EXPAND]} expand, {counts[CONTRACT]} contract, "
            f"{counts[BREAKING]} breaking over the databases [{per}] (exit {result.exit_code})")
