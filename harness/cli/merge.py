"""``migration-harness merge``: combine several jobs' JSON reports into one verdict."""
from __future__ import annotations

import os
import sys

import click

from ..errors import HarnessError
from ..reports.formats import write_junit, write_markdown
from ..reports.html import write_html
from ..reports.merge import load_report, merge
from ..reports.report import color_wanted, summary, write_json


@click.command("merge")
@click.argument("reports", nargs=-1, required=True, metavar="REPORT.json...")
@click.option("--json", "json_path", metavar="PATH", help="Write the merged JSON report to PATH (- for stdout).")
@click.option("--junit", "junit_path", metavar="PATH", help="Write the merged JUnit XML report to PATH.")
@click.option("--markdown", "markdown_path", metavar="PATH",
              help="Write the merged Markdown report (also appended to $GITHUB_STEP_SUMMARY when set).")
@click.option("--html", "html_path", metavar="PATH", help="Write the merged HTML report.")
def merge_reports(reports: tuple[str, ...], json_path: str | None, junit_path: str | None,
                  markdown_path: str | None, html_path: str | None) -> None:
    """Combine the JSON reports of several jobs (a nightly matrix) into one verdict; each database keeps its
    server version, so postgresql 13 and 17 stay separate rows. Exits with the merged run's exit code."""
    try:
        result = merge([load_report(path) for path in reports])
    except HarnessError as exc:
        click.echo(f"migration-harness: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(summary(result), err=json_path == "-", color=color_wanted())
    if json_path:
        write_json(result, json_path)
    if junit_path:
        write_junit(result, junit_path)
    if html_path:
        write_html(result, html_path)
    if markdown_path or os.environ.get("GITHUB_STEP_SUMMARY"):
        write_markdown(result, markdown_path)
    sys.exit(result.exit_code)
