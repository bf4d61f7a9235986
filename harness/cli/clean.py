"""``migration-harness clean``: remove what crashed runs left behind."""
from __future__ import annotations

import sys

import click

from ..run.clean import clean as clean_leftovers
from ..config import server_urls
from ..errors import EXIT_UNAVAILABLE, HarnessError


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--run-id", "run_ids", multiple=True, metavar="ID",
              help="Only the leftovers of this run (repeatable), e.g. the HARNESS_RUN_ID a CI job set.")
def clean(dry_run: bool, run_ids: tuple[str, ...]) -> None:
    """Remove what crashed runs left: labelled containers, mharness_* scratch databases on the servers given by
    HARNESS_POSTGRESQL_URL / HARNESS_MYSQL_URL (or pyproject), and temporary directories. Runs still going on
    this machine are left alone."""
    try:
        report = clean_leftovers(server_urls(), dry_run=dry_run, run_ids=run_ids)
    except HarnessError as exc:
        click.echo(f"migration-harness: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    verb = "would remove" if dry_run else "removed"
    for leftover in report.removed:
        click.echo(f"{verb} {leftover.text}")
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{len(report.removed)} leftover(s) {verb}")
    sys.exit(EXIT_UNAVAILABLE if any(not p.startswith("Docker") for p in report.problems) else 0)
