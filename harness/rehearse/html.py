"""``rehearse --html PATH``: the rehearsal as one self-contained page (no network): the verdict and its reasons,
production and the throwaway server, the drift, each pending step with its duration, rows and error, and the
models check's differences. Same look as ``run --html``."""
from __future__ import annotations

from html import escape

from ..reports.html import _STYLE
from ..config.redact import redact
from ..reports.report import write_atomically
from .command import NOT_RUN, SAFE, UNPROVED, RehearseResult

_CELL = {"passed": "passed", "failed": "failed", NOT_RUN: "notrun"}


def render(result: RehearseResult) -> str:
    source, throwaway = result.source, result.throwaway
    verdict = result.verdict if result.verdict in (SAFE, UNPROVED) else "unsafe"
    css = {SAFE: "passed", UNPROVED: "error"}.get(verdict, "failed")
    parts = [f'<h1 class="{css}" id="verdict" data-verdict="{verdict}">rehearse: {verdict.upper()}</h1>']
    if result.reasons or result.unproved:
        parts.append('<ul id="reasons">' + "".join(f"<li>{escape(r)}</li>" for r in result.reasons)
                     + "".join(f'<li class="unproved">unproved: {escape(u)}</li>' for u in result.unproved) + "</ul>")
    at = ", ".join(source["revisions"]) or "base"
    server = (f"{escape(str(throwaway['kind']))} {escape(throwaway.get('image') or '')} "
              f"({escape(throwaway['server_version'])})" if throwaway.get("kind") else "not started")
    parts.append(f'<p id="source">production <code>{escape(source["url"])}</code> ({escape(source["server_version"])}), '
                 f"read-only ({escape(source['read_only'])}), at <code>{escape(at)}</code>; "
                 f"{sum(source['copied_rows'].values())} row(s) copied; throwaway server: {server}</p>")
    parts.append(f'<h2>Drift: <span id="drift-status">{escape(result.drift_status)}</span></h2>')
    if result.drift_error:
        parts.append(f"<pre>{escape(result.drift_error)}</pre>")
    drift = [f'<li class="drift">{escape(f.text)}</li>' for f in result.drift]
    drift += [f'<li class="ignored">ignored: {escape(d["text"])} ({escape(d["reason"])})</li>'
              for d in result.drift_ignored]
    if drift:
        parts.append("<ul>" + "".join(drift) + "</ul>")
    rows = []
    for step in result.steps:
        label = f"{escape(step.revision)} <span>{escape(step.message)}</span>"
        timing = "" if step.status == NOT_RUN else f"{step.duration_s:.3f}s"
        rows.append(f'<tr class="step" data-revision="{escape(step.revision)}" data-status="{step.status}">'
                    f'<td class="rev">{label}</td><td class="cell {_CELL.get(step.status, "error")}">'
                    f'{escape(step.status.replace("_", " "))}</td><td class="cell">{timing}</td>'
                    f'<td class="cell">{"" if step.status == NOT_RUN else step.rows}</td></tr>')
        if step.error:
            rows.append(f'<tr><td colspan="4"><details open><summary>{escape(step.revision)} failed</summary>'
                        f"<pre>{escape(step.error)}</pre></details></td></tr>")
        if step.proofs:
            items = "".join(f'<li class="proof" data-decides="{p.decides}">{escape(p.decides)}: {escape(p.text)}'
                            + (f"<br><code>{escape(p.sql)}</code>" if p.sql else "") + "</li>" for p in step.proofs)
            rows.append(f'<tr><td colspan="4"><details{" open" if step.proof != "proved" else ""}><summary>'
                        f"{escape(step.revision)} on production's rows: {escape(step.proof)}</summary>"
                        f"<ul>{items}</ul></details></td></tr>")
    parts.append(f"<h2>Pending migrations ({len(result.pending)})</h2>"
                 '<table class="chain" id="steps"><tr><th>revision</th><th>status</th><th>duration</th>'
                 "<th>rows</th></tr>" + "".join(rows) + "</table>")
    if result.schema_check is not None:
        check = result.schema_check
        parts.append(f'<h2>schema_matches_models: <span id="models-status">{escape(check.status)}</span></h2>'
                     f"<p>{escape(check.message)}</p>")
        if check.differences:
            parts.append("<ul>" + "".join(f'<li class="difference">{escape(str(d.get("text")))}</li>'
                                          for d in check.differences) + "</ul>")
    if result.notes:
        parts.append("<ul>" + "".join(f'<li class="note">note: {escape(n)}</li>' for n in result.notes) + "</ul>")
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>migration-harness rehearse: {verdict}</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def write_html(result: RehearseResult, path: str, hide: list[str] | None = None) -> None:
    write_atomically(path, redact(render(result), hide or []))
