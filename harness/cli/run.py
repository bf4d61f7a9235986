"""``migration-harness run``, ``merge`` and ``clean``: parse options, call the library, print, set the exit code."""
from __future__ import annotations

import dataclasses
import datetime
import os
import signal
import sys
import traceback
from typing import Any

import click

from ..config import DIALECTS, build_config, server_urls
from ..errors import HarnessError
from ..reports.formats import write_junit, write_markdown
from ..reports.html import write_html
from ..config.redact import redact, secrets_of
from ..results import RunResult
from ..reports.report import TextReporter, color_wanted, summary, verdict_line, write_json
from ..backends.names import new_run_id
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, app_options, interrupt
from ..run.preflight import started_preflight

@click.command()
@app_options
@click.option("--db", "db", multiple=True, metavar="NAME",
              help=f"Database(s) to run on, repeatable or comma-separated: {', '.join(DIALECTS)} (default: all).")
@click.option("--json", "json_path", metavar="PATH", help="Also write the JSON report to PATH.")
@click.option("--skip-unavailable", is_flag=True,
              help="Report a database that cannot be provided as skipped instead of exiting with 3.")
@click.option("--step-timeout", type=float, metavar="SECONDS",
              help="Stop a migration step (or the app's start-up) that takes longer (default 300).")
@click.option("--lock-timeout", type=float, metavar="SECONDS",
              help="How long a step may wait for a database lock before failing (default 60).")
@click.option("--ignore-table", "ignore_tables", multiple=True, metavar="TABLE",
              help="Ignore differences in TABLE (shown as ignored, with the reason). Repeatable.")
@click.option("--ignore-check", "ignore_checks", multiple=True, metavar="CHECK[@DB]",
              help="Report CHECK (on DB only, if given) as skipped: ignored. Repeatable.")
@click.option("--checks", "checks", multiple=True, metavar="NAMES",
              help="Only these checks (comma-separated; default: all). Checks they need still run.")
@click.option("--from", "from_revision", metavar="REV", help="Test only the revisions after REV (applied first, unchecked).")
@click.option("--to", "to_revision", metavar="REV", help="Test only up to REV (default: head).")
@click.option("--since", "since", metavar="REF",
              help="Check only the revisions added or changed since the git ref REF (e.g. origin/main); those "
                   "that exist at REF are applied first, unchecked. The pre-push run.")
@click.option("--allow-multiple-heads", is_flag=True, default=None,
              help="Do not fail single_head when the history has several heads.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also print every SQL statement the migrations run, and the traceback of a check that raised.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict (errors still go to stderr).")
@click.option("--junit", "junit_path", metavar="PATH", help="Also write a JUnit XML report (a testcase per database × check).")
@click.option("--markdown", "markdown_path", metavar="PATH",
              help="Also write a Markdown report (also appended to $GITHUB_STEP_SUMMARY when set).")
@click.option("--html", "html_path", metavar="PATH", help="Also write a self-contained HTML report.")
@click.option("--baseline", metavar="KIND",
              help="Check the chain from the app's install instead of an empty database: create-all builds the "
                   "tables with db.create_all(), stamps head, then reverts and re-applies the revisions.")
@click.option("--env", "env_vars", multiple=True, metavar="NAME=VALUE",
              help="Set NAME in each database's worker before the app loads; {dialect}, {driver} and {url} are that "
                   "database's. Repeatable.")
@click.option("--multidb", is_flag=True, default=None,
              help="Check each bind (SQLALCHEMY_BINDS) on a scratch database of its own, as Flask-Migrate's "
                   "multidb env.py migrates them (found by itself when env.py is that template).")
@click.option("--tmpfs-size", metavar="SIZE",
              help="Size of a throwaway container's data directory (a tmpfs), e.g. 2g (default: Docker's, half "
                   "the memory).")
def run(app: str | None, migrations: str | None, db: tuple[str, ...], json_path: str | None,
        skip_unavailable: bool, step_timeout: float | None, ignore_tables: tuple[str, ...],
        ignore_checks: tuple[str, ...], checks: tuple[str, ...], from_revision: str | None,
        to_revision: str | None, allow_multiple_heads: bool | None, lock_timeout: float | None,
        verbose: bool, quiet: bool, junit_path: str | None, markdown_path: str | None,
        html_path: str | None, tmpfs_size: str | None, python: str | None, since: str | None,
        baseline: str | None, env_vars: tuple[str, ...], multidb: bool | None) -> None:
    """Run the chain base→head and head→base on each database and print a verdict per database."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    started_at = datetime.datetime.now(datetime.timezone.utc)
    reporter: TextReporter | None = None
    config = None
    try:
        config = build_config(app=app, migrations=migrations, db=db, json_path=json_path,
                              skip_unavailable=skip_unavailable, step_timeout_s=step_timeout,
                              ignore_tables=ignore_tables, ignore_checks=ignore_checks, checks=checks,
                              from_revision=from_revision, to_revision=to_revision, since=since,
                              allow_multiple_heads=allow_multiple_heads, lock_timeout_s=lock_timeout,
                              echo_sql=verbose, tmpfs_size=tmpfs_size, python=python, baseline=baseline,
                              env_vars=env_vars, multidb=multidb)
        # with --json - the report is standard output, and everything for people goes to stderr
        text_out = sys.stderr if json_path == "-" else None
        config = dataclasses.replace(config, run_id=config.run_id or new_run_id())  # known to an interrupted report
        with started_preflight(config, config.run_id) as gate:  # the app loads while the rest is imported
            from ..run.runner import run as run_checks  # SQLAlchemy, the backends, the Docker client

            if sys.stdout.isatty() and not quiet and json_path != "-":  # a person at a terminal: live progress
                from ..reports.live import LiveReporter

                with LiveReporter(verbose=verbose, color=color_wanted()) as live:
                    reporter = live
                    result = run_checks(config, live, gate)
            else:
                reporter = TextReporter(out=text_out, verbose=verbose, quiet=quiet)
                result = run_checks(config, reporter, gate)
    except HarnessError as exc:
        click.echo(f"migration-harness: error: {exc}", err=True)
        _stopped_report(json_path, exc.exit_code, str(exc), started_at)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("migration-harness: interrupted; containers and scratch databases were removed", err=True)
        ran = reporter.so_far([d.dialect for d in config.databases]) if reporter and config else ()
        _stopped_report(json_path, EXIT_INTERRUPTED, "interrupted (SIGINT / SIGTERM)", started_at, ran,
                        config.run_id if config else None)
        sys.exit(EXIT_INTERRUPTED)
    except Exception:  # a bug in the harness: report it, still without a password in sight
        hide = secrets_of(*server_urls().values())
        click.echo(redact(f"migration-harness: internal error (please report it):\n{traceback.format_exc()}", hide),
                   err=True)
        ran = reporter.so_far([d.dialect for d in config.databases]) if reporter and config else ()
        _stopped_report(json_path, EXIT_INTERNAL, "internal error (please report it)", started_at, ran,
                        config.run_id if config else None)
        sys.exit(EXIT_INTERNAL)
    # a CI log (lines of the databases interleaved): each database's checks together again, in the order of --db
    blocks = isinstance(reporter, TextReporter) and reporter.steps and len(result.databases) > 1
    click.echo(verdict_line(result) if quiet else summary(result, checks=blocks), err=json_path == "-",
               color=color_wanted())
    if json_path:
        write_json(result, json_path)
    if junit_path:
        write_junit(result, junit_path, started_at)
    if html_path:
        write_html(result, html_path)
    if markdown_path or os.environ.get("GITHUB_STEP_SUMMARY"):
        write_markdown(result, markdown_path)
    sys.exit(result.exit_code)


def _stopped_report(json_path: str | None, code: int, why: str, started_at: datetime.datetime,
                    databases: tuple[Any, ...] = (), run_id: str | None = None) -> None:
    """A run that stopped before its verdict still leaves its JSON report (with what ran, if anything), so a CI
    step that parses the report learns why instead of finding no file."""
    if not json_path:
        return
    result = RunResult(ok=False, exit_code=code, head=None, run_id=run_id or os.environ.get("HARNESS_RUN_ID", ""),
                       started_at=started_at.replace(microsecond=0).isoformat(), error=why, databases=databases)
    try:
        write_json(result, json_path)
    except OSError as exc:  # an unwritable path is itself the usage error being reported
        click.echo(f"migration-harness: error: cannot write {json_path}: {exc.strerror or exc}", err=True)
