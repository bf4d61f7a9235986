"""The ``rehearse`` click command: parse options, call :func:`harness.rehearse.command.rehearse`, print, exit."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import traceback

import click

from ..backends.names import new_run_id
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, app_options, interrupt
from ..config import build_config
from ..errors import HarnessError
from ..run.preflight import started_preflight
from ..config.redact import redact, secrets_of


@click.command()
@click.option("--from", "from_url", metavar="URL", envvar="HARNESS_REHEARSE_FROM", required=True,
              help="The database to rehearse against (production, a replica, staging); read-only. "
                   "Default: HARNESS_REHEARSE_FROM.")
@app_options
@click.option("--image", metavar="IMAGE",
              help="Image of the throwaway server (default: from production's version, e.g. postgres:15).")
@click.option("--sample-rows", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Copy up to N rows per table (foreign keys kept consistent) into the rehearsal.")
@click.option("--step-timeout", type=float, metavar="SECONDS",
              help="Stop a migration step (or the app's start-up) that takes longer (default 300).")
@click.option("--json", "json_path", metavar="PATH", help="Also write the JSON report to PATH (- for stdout).")
@click.option("--markdown", "markdown_path", metavar="PATH", help="Also write a Markdown report to PATH.")
@click.option("--html", "html_path", metavar="PATH", help="Also write a self-contained HTML report to PATH.")
@click.option("--ignore-table", "ignore_tables", multiple=True, metavar="TABLE",
              help="Ignore differences in TABLE (drift and schema_matches_models; shown as ignored). Repeatable.")
@click.option("--lock-budget", type=float, metavar="SECONDS",
              help="Unsafe when a lock that blocks writes is estimated to be held longer at production's size "
                   "(default 5).")
@click.option("--estimate-rows", metavar="N,N", help="Rows per table to measure each step at (default 10000,100000).")
@click.option("--no-estimate", is_flag=True, help="Do not measure the steps nor estimate their lock durations.")
@click.option("-v", "--verbose", is_flag=True, help="Also print progress as it happens.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict (errors still go to stderr).")
def rehearse(from_url: str, app: str | None, migrations: str | None, image: str | None, sample_rows: int,
             step_timeout: float | None, json_path: str | None, markdown_path: str | None, html_path: str | None,
             ignore_tables: tuple[str, ...], lock_budget: float | None, estimate_rows: str | None, no_estimate: bool,
             verbose: bool, quiet: bool, python: str | None) -> None:
    """Is `flask db upgrade` safe on the database at --from? Reads it read-only, checks it for drift against its
    own migrations, rehearses the pending migrations on a copy on a throwaway server, and asks production itself
    (read-only) what each step that depends on existing rows will meet. Exit 0 safe, 1 unsafe, 5 unproved."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    hide = secrets_of(from_url, *(os.environ.get(f"HARNESS_{d}_URL") for d in ("POSTGRESQL", "MYSQL")))
    out_err = json_path == "-"

    def progress(text: str) -> None:
        if verbose and not quiet:
            click.echo(redact(text, hide), err=True)

    try:
        # the app loads from here on, while the rest of rehearse is imported (a usage error below stops it)
        loading = build_config(app=app, migrations=migrations, db=("sqlite",), checks=("upgrade",),
                               step_timeout_s=step_timeout, python=python)
        loading = dataclasses.replace(loading, run_id=loading.run_id or new_run_id())
        with started_preflight(loading, loading.run_id, multidb=False, keep=False) as gate:
            from ..rehearse.command import RehearseConfig, rehearse as run_rehearsal
            from ..estimate.settings import estimate_settings

            estimates = None if no_estimate else estimate_settings(os.getcwd(), "rehearse", lock_budget=lock_budget,
                                                                   sizes=estimate_rows)
            result = run_rehearsal(RehearseConfig(from_url=from_url, app=app, migrations=migrations, image=image,
                                                  sample_rows=sample_rows, step_timeout_s=step_timeout,
                                                  ignore_tables=ignore_tables, estimates=estimates, python=python),
                                   progress, gate=gate)
    except HarnessError as exc:
        from ..rehearse.report import write_error

        click.echo(redact(f"migration-harness: error: {exc}", hide), err=True)
        if json_path:
            write_error(json_path, exc.exit_code, str(exc), hide)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from ..rehearse.report import write_error

        click.echo("migration-harness: interrupted; containers and scratch databases were removed", err=True)
        if json_path:
            write_error(json_path, EXIT_INTERRUPTED, "interrupted (SIGINT / SIGTERM)", hide)
        sys.exit(EXIT_INTERRUPTED)
    except Exception:  # a bug in the harness: report it, still without a password in sight
        click.echo(redact(f"migration-harness: internal error (please report it):\n{traceback.format_exc()}", hide),
                   err=True)
        sys.exit(EXIT_INTERNAL)
    from ..rehearse.report import to_text, verdict_line, write_json, write_markdown

    text = verdict_line(result) if quiet else to_text(result, verbose)
    click.echo(redact(text, hide), err=out_err)
    if json_path:
        write_json(result, json_path, hide)
    if markdown_path:
        write_markdown(result, markdown_path, hide)
    if html_path:
        from ..rehearse.html import write_html

        write_html(result, html_path, hide)
    sys.exit(result.exit_code)
