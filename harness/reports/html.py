"""``--html PATH``: the run as one self-contained page (no network): the revision graph drawn (branches and merges
visible), each revision × database coloured by what happened to it with its step timings, and every failure
expanded with the database's error and the schema differences."""
from __future__ import annotations

import html
from typing import Any

from .formats import database_labels
from .report import verdict_text, write_atomically
from ..results import ERROR, FAILED, PASSED, SKIPPED, CheckResult, DatabaseResult, RunResult

ROW_PX = 24
LANE_PX = 16
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; } h1.passed { color: #137333; } h1.failed { color: #b3261e; }
table.chain { border-collapse: collapse; }
table.chain td, table.chain th { height: %(row)dpx; padding: 0 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
table.chain th { text-align: left; position: sticky; top: 0; background: #fff; }
td.graph { padding: 0; } td.rev { font-family: ui-monospace, monospace; }
td.cell { text-align: right; font-family: ui-monospace, monospace; min-width: 90px; }
td.passed { background: #e6f4ea; } td.failed { background: #fce8e6; color: #b3261e; font-weight: 600; }
td.error { background: #fef7e0; color: #8a5300; font-weight: 600; } td.notrun { background: #f1f3f4; color: #999; }
details { margin: 8px 0; border: 1px solid #f2b8b5; border-radius: 6px; padding: 6px 10px; }
summary { cursor: pointer; font-weight: 600; } pre { white-space: pre-wrap; background: #f8f9fa; padding: 8px; }
""" % {"row": ROW_PX}


def _lanes(revisions: list[dict[str, Any]]) -> dict[str, int]:
    """A column per line of descent: a revision takes its first parent's lane unless a sibling already did;
    a merge takes the lowest of its parents' lanes."""
    lane: dict[str, int] = {}
    taken: dict[str, bool] = {}  # parent -> a child already continues its lane
    free = 0
    for rev in revisions:
        parents = [p for p in rev["down_revisions"] if p in lane]
        if parents and not taken.get(parents[0]):
            lane[rev["revision"]] = min(lane[p] for p in parents)
            taken[parents[0]] = True
        else:
            lane[rev["revision"]] = free
        free = max(free, lane[rev["revision"]] + 1)
    return lane


def _graph_svg(revisions: list[dict[str, Any]]) -> str:
    """One SVG beside the table's rows (``revisions`` base first, drawn head at the top): a dot per revision, a
    line to each parent (two for a merge)."""
    lane = _lanes(revisions)
    row = {r["revision"]: len(revisions) - 1 - i for i, r in enumerate(revisions)}
    width = (max(lane.values(), default=0) + 1) * LANE_PX + 8
    height = len(revisions) * ROW_PX

    def point(rev: str) -> tuple[int, int]:
        return lane[rev] * LANE_PX + LANE_PX // 2 + 4, row[rev] * ROW_PX + ROW_PX // 2

    parts = [f'<svg class="graph" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for rev in revisions:
        x, y = point(rev["revision"])
        for parent in rev["down_revisions"]:
            if parent in row:
                px, py = point(parent)
                parts.append(f'<path class="edge" d="M{x},{y} C{x},{y + ROW_PX // 2} {px},{py - ROW_PX // 2} {px},{py}" '
                             'stroke="#5f6368" fill="none" stroke-width="2"/>')
    for rev in revisions:
        x, y = point(rev["revision"])
        kind = "merge" if len(rev["down_revisions"]) > 1 else "revision"
        parts.append(f'<circle class="{kind}" data-revision="{html.escape(rev["revision"])}" cx="{x}" cy="{y}" r="5" '
                     f'fill="{"#fff" if kind == "merge" else "#1a73e8"}" stroke="#1a73e8" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _cell(db: DatabaseResult, revision: str) -> tuple[str, str]:
    """(class, text) of a revision on a database: failed / error where a check broke there, else passed with the
    time its steps took, or not run."""
    broken = [c for c in db.checks if c.revision == revision and c.status in (FAILED, ERROR)]
    steps = [s for s in db.steps if s.get("revision") == revision]
    seconds = sum(float(s.get("duration_s", 0)) for s in steps)
    if broken:
        status = FAILED if any(c.status == FAILED for c in broken) else ERROR
        return status, f"{status} ({', '.join(c.label for c in broken)})"
    if steps:
        return (PASSED, f"{seconds:.2f}s") if all(s.get("passed", True) for s in steps) else (FAILED, "failed")
    return "notrun", "–"


def _failure(label: str, check: CheckResult) -> str:
    where = f" at {check.revision}" if check.revision else ""
    body = [f"<p>{html.escape(check.message)}</p>"]
    if check.same_as:
        body = [f"<p>the same error as <code>{html.escape(check.same_as)}</code></p>"]
    if check.differences:
        body.append("<ul>" + "".join(f"<li>{html.escape(str(d.get('text', '')))}</li>" for d in check.differences)
                    + "</ul>")
    if check.traceback:
        body.append(f"<pre>{html.escape(check.traceback)}</pre>")
    return (f'<details open class="failure" data-database="{html.escape(label)}" data-check="{check.name}"'
            + (f' data-bind="{html.escape(check.bind)}"' if check.bind is not None else "") + ">"
            f"<summary>{html.escape(label)} · {html.escape(check.label)} {check.status}{html.escape(where)}</summary>"
            + "".join(body) + "</details>")


def to_html(result: RunResult) -> str:
    labels = database_labels(result)
    revisions = list(result.revisions)
    verdict = verdict_text(result)
    head = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>migration-harness: {html.escape(verdict)}</title><style>{_STYLE}</style></head><body>",
            f'<h1 class="{"passed" if result.ok else "failed"}">migration-harness: {html.escape(verdict)}</h1>',
            f"<p>run <code>{html.escape(result.run_id)}</code> · head <code>{html.escape(result.head or '')}</code> · "
            f"{len(revisions)} revisions · "
            + " · ".join(f"{html.escape(label)}: {html.escape(db.server_version or db.status)}"
                         for label, db in zip(labels, result.databases)) + "</p>"]
    failures = [_failure(label, c) for label, db in zip(labels, result.databases) for c in db.checks
                if c.status in (FAILED, ERROR)]
    failures += [f'<details open class="failure" data-database="{html.escape(label)}"><summary>{html.escape(label)} '
                 f"{db.status}</summary><p>{html.escape(db.message)}</p></details>"
                 for label, db in zip(labels, result.databases) if db.message and db.status in (ERROR, SKIPPED)]
    body = ["<h2>What failed</h2>", *failures] if failures else []
    rows = ["<h2>Revisions</h2>", '<table class="chain"><thead><tr><th>graph</th><th>revision</th><th>message</th>'
            + "".join(f"<th>{html.escape(label)}</th>" for label in labels) + "</tr></thead><tbody>"]
    for index, rev in enumerate(reversed(revisions)):  # head first, as `flask db history` prints
        graph = f'<td class="graph" rowspan="{len(revisions)}">{_graph_svg(revisions)}</td>' \
            if index == 0 else ""
        cells = "".join(f'<td class="cell {cls}" data-database="{html.escape(label)}">{html.escape(text)}</td>'
                        for label, (cls, text) in zip(labels, (_cell(db, rev["revision"]) for db in result.databases)))
        rows.append(f'<tr data-revision="{html.escape(rev["revision"])}">{graph}'
                    f'<td class="rev">{html.escape(rev["revision"])}</td><td>{html.escape(rev["message"])}</td>'
                    f"{cells}</tr>")
    rows.append("</tbody></table>")
    return "\n".join(head + body + rows + ["</body></html>"]) + "\n"


def write_html(result: RunResult, path: str) -> None:
    write_atomically(path, to_html(result))


__all__ = ["to_html", "write_html"]
