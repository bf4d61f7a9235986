"""``migration-harness compat``: parse options, call :func:`harness.rolling.command.compat`, print, set the exit
code."""
from __future__ import annotations

import dataclasses
import os
import sys
import traceback

import click

from ..backends.base import new_run_id
from ..config import build_config, server_urls
from ..errors import HarnessError
from ..config.interpreter import resolve_python
from ..config.redact import redact, secrets_of
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, app_options, stop_on_signals, write_json_report


@click.command()
@click.option("--previous", "previous", metavar="REF",
              help="The release running now: a tag, branch or commit of the app's repository (checked out apart).")
@click.option("--previous-path", metavar="DIR", help="Or a checkout of the release running now.")
@click.option("--previous-python", metavar="PATH",
              help="The previous release's interpreter (or venv), when its pins differ (default: --python's).")
@click.option("--previous-tests", metavar="CMD",
              help="Also run CMD (a shell command) in the previous release's checkout after each new revision, "
                   "with DATABASE_URL set to the database; a non-zero exit is a failure.")
@click.option("--order", type=click.Choice(["schema-first", "code-first"]), default="schema-first", show_default=True,
              help="The deploy to judge: migrations first (contract revisions after the old code is gone), or the "
                   "new code first.")
@app_options
@click.option("--db", "db", multiple=True, metavar="NAME",
              help="Database(s): sqlite, postgresql, mysql, repeatable or comma-separated (default: all).")
@click.option("--rows", type=click.IntRange(1, 10000), default=None, metavar="N",
              help="Rows per table on the previous release's head (default 5).")
@click.option("--json", "json_path", metavar="PATH", help="Also write the JSON report to PATH (- for stdout).")
@click.option("--skip-unavailable", is_flag=True, help="Skip a database that cannot be provided instead of exiting 3.")
@click.option("--step-timeout", type=float, metavar="SECONDS", help="Stop a step that takes longer (default 300).")
@click.option("-v", "--verbose", is_flag=True, help="Every failing operation, and progress as it happens.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict line.")
def compat(previous: str | None, previous_path: str | None, previous_python: str | None,
           previous_tests: str | None, order: str, app: str | None, migrations: str | None, python: str | None,
           db: tuple[str, ...], rows: int | None, json_path: str | None, skip_unavailable: bool,
           step_timeout: float | None, verbose: bool, quiet: bool) -> None:
    """Will the release running now keep working while this one deploys? Classifies each new revision as expand
    (safe before the deploy), contract (after the old code is gone) or breaking. Exit 0 deployable, 1 not."""
    from ..rolling.command import DEFAULT_ROWS, CompatOptions, compat as run_compat
    from ..rolling import report

    stop_on_signals()
    hide = secrets_of(*server_urls().values())
    run_id = os.environ.get("HARNESS_RUN_ID", "")
    say = (lambda text: click.echo(text, err=True)) if verbose and not quiet else None
    try:
        config = build_config(app=app, migrations=migrations, db=db, skip_unavailable=skip_unavailable,
                              step_timeout_s=step_timeout, checks=("upgrade",), python=python)
        config = dataclasses.replace(config, run_id=config.run_id or new_run_id())
        run_id = config.run_id or ""
        old_python = resolve_python(previous_python, {}, None, config.cwd) if previous_python else None
        options = CompatOptions(previous=previous, previous_path=previous_path, previous_python=old_python,
                                previous_tests=previous_tests, order=order, rows=rows or DEFAULT_ROWS)
        result = run_compat(config, options, say)
    except HarnessError as exc:
        click.echo(redact(f"migration-harness: error: {exc}", hide), err=True)
        if json_path:
            write_json_report(report.stopped(exc.exit_code, redact(str(exc), hide), run_id), json_path)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("migration-harness: interrupted; containers, scratch databases and the checkout were removed",
                   err=True)
        if json_path:
            write_json_report(report.stopped(EXIT_INTERRUPTED, "interrupted (SIGINT / SIGTERM)", run_id), json_path)
        sys.exit(EXIT_INTERRUPTED)
    except Exception:  # a bug in the harness: report it, without a password in sight
        click.echo(redact(f"migration-harness: internal error (please report it):\n{traceback.format_exc()}", hide),
                   err=True)
        if json_path:
            write_json_report(report.stopped(EXIT_INTERNAL, "internal error (please report it)", run_id), json_path)
        sys.exit(EXIT_INTERNAL)
    click.echo(redact(report.verdict(result) if quiet else report.text(result, verbose), hide),
               err=json_path == "-")
    if json_path:
        write_json_report(report.to_dict(result), json_path)
    sys.exit(result.exit_code)
