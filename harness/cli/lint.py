"""``migration-harness lint`` and ``sql``: parse options, call :mod:`harness.lint`, print, set the exit code."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import traceback

import click

from ..backends.names import new_run_id
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, app_options, interrupt, write_json_report
from ..config import build_config, server_urls
from ..errors import ConfigError, HarnessError
from ..lint.findings import SEVERITIES
from ..config.redact import redact, secrets_of
from ..reports.report import write_atomically
from ..run.preflight import started_preflight



@click.command()
@app_options
@click.option("--db", "db", multiple=True, metavar="NAME",
              help="Database(s): sqlite, postgresql, mysql, repeatable or comma-separated (default: all).")
@click.option("--from", "from_revision", metavar="REV",
              help="Lint only the revisions after REV, e.g. production's current revision (default: all).")
@click.option("--to", "to_revision", metavar="REV", help="Lint only up to REV (default: head).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Exit 1 when a finding of this severity or worse is not allowed (default: error).")
@click.option("--format", "output_format", type=click.Choice(("text", "json", "github")), default="text",
              help="What to print: text, the JSON report, or GitHub annotations (default: text).")
@click.option("--json", "json_path", metavar="PATH", help="Also write the JSON report to PATH.")
@click.option("--markdown", "markdown_path", metavar="PATH",
              help="Also write a Markdown table (also appended to $GITHUB_STEP_SUMMARY when set).")
@click.option("--sql-dir", metavar="DIR", help="Write each revision's offline SQL, per database, under DIR.")
@click.option("--rows", type=click.IntRange(1, 100000), default=None, metavar="N",
              help="Rows per table on the scratch database each step runs on (default: 20).")
@click.option("--no-observe", "no_observe", is_flag=True,
              help="Only the offline SQL and its rules: start no database.")
@click.option("--skip-unavailable", is_flag=True, help="Skip a database that cannot be provided instead of exiting 3.")
@click.option("--step-timeout", type=float, metavar="SECONDS", help="Stop a step that takes longer (default 300).")
@click.option("--lock-timeout", type=float, metavar="SECONDS", help="How long a step may wait for a lock (default 60).")
@click.option("--sizes-from", metavar="URL",
              help="Production (or a replica), read-only: its tables' sizes from the catalogue; each pending step is "
                   "then measured at --estimate-rows and its lock time estimated at that size (env HARNESS_SIZES_FROM).")
@click.option("--lock-budget", type=float, metavar="SECONDS",
              help="Fail when a lock that blocks writes is estimated to be held longer (default 5; needs --sizes-from).")
@click.option("--estimate-rows", metavar="N,N", help="Rows per table to measure each step at (default 10000,100000).")
@click.option("--explain", "explain_rule", metavar="RULE", help="Print what RULE finds, why it matters, what to do; exit.")
@click.option("--list-rules", is_flag=True, help="List every rule with its severity and databases; exit.")
@click.option("-v", "--verbose", is_flag=True, help="Also show info findings and each step's duration and rows.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict line.")
def lint(app: str | None, migrations: str | None, db: tuple[str, ...], from_revision: str | None,
         to_revision: str | None, fail_on: str | None, output_format: str, json_path: str | None,
         markdown_path: str | None, sql_dir: str | None, rows: int | None, no_observe: bool,
         skip_unavailable: bool, step_timeout: float | None, lock_timeout: float | None,
         sizes_from: str | None, lock_budget: float | None, estimate_rows: str | None, explain_rule: str | None,
         list_rules: bool, verbose: bool, quiet: bool, python: str | None) -> None:
    """What each pending migration step will do to a live database: the locks it takes and the tables it
    rewrites or copies (observed on scratch databases holding rows), rules on its offline SQL (squawk on
    PostgreSQL), and whether its offline SQL can be generated at all."""
    if list_rules or explain_rule:
        from ..lint import catalogue

        try:
            click.echo(catalogue.list_rules() if list_rules else catalogue.explain(explain_rule or ""))
        except HarnessError as exc:
            click.echo(f"migration-harness: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(0)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    to_stderr = output_format != "text" or json_path == "-"
    try:
        config = build_config(app=app, migrations=migrations, db=db, skip_unavailable=skip_unavailable,
                              step_timeout_s=step_timeout, lock_timeout_s=lock_timeout,
                              from_revision=from_revision, to_revision=to_revision, checks=("upgrade",),
                              python=python)
        config = dataclasses.replace(config, run_id=config.run_id or new_run_id())
        # the app loads from here on, while the rest of lint is imported (a usage error below stops it)
        with started_preflight(config, config.run_id, multidb=False, keep=not no_observe) as gate:
            from ..lint.allow import lint_settings
            from ..lint.command import LintOptions, lint as run_lint
            from ..lint.observe import DEFAULT_ROWS

            settings = lint_settings(config.cwd)
            from ..estimate.settings import estimate_settings

            estimates = estimate_settings(config.cwd, "lint", lock_budget=lock_budget, sizes=estimate_rows,
                                          sizes_from=sizes_from)
            if estimates.sizes_from and no_observe:
                raise ConfigError("--sizes-from measures each step on a scratch database: it cannot go with "
                                  "--no-observe")
            options = LintOptions(fail_on=fail_on or settings.fail_on, rows=rows or DEFAULT_ROWS,
                                  observe=not no_observe, sql_dir=sql_dir, disabled=tuple(settings.disable),
                                  enable=tuple(settings.enable), estimates=estimates)
            say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
            result = run_lint(config, options, say if verbose or not sys.stderr.isatty() else None, gate=gate)
    except HarnessError as exc:
        click.echo(f"migration-harness: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("migration-harness: interrupted; containers and scratch databases were removed", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception:  # a bug in the harness: report it, without a password in sight
        hide = secrets_of(*server_urls().values(), sizes_from)
        click.echo(redact(f"migration-harness: internal error (please report it):\n{traceback.format_exc()}", hide),
                   err=True)
        sys.exit(EXIT_INTERNAL)
    from ..lint import report

    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif output_format == "github":
        click.echo(report.github(result))
    if quiet:
        for database in result.databases:  # why a database did not finish is never silent
            if database.status == "error":
                click.echo(f"migration-harness: {database.dialect}: {database.message}", err=True)
        click.echo(report.verdict(result), err=to_stderr)
    elif output_format == "text" or to_stderr:
        click.echo(report.text(result, verbose) if output_format == "text" else report.verdict(result),
                   err=to_stderr)
    if json_path:
        write_json_report(result.to_dict(), json_path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if markdown_path:
        write_atomically(markdown_path, report.markdown(result))
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(report.markdown(result))
    sys.exit(result.exit_code)



@click.command("sql")
@app_options
@click.option("--db", "db", multiple=True, metavar="NAME",
              help="Database(s): sqlite, postgresql, mysql, repeatable or comma-separated (default: all).")
@click.option("--from", "from_revision", metavar="REV", help="Only the revisions after REV (default: all).")
@click.option("--to", "to_revision", metavar="REV", help="Only up to REV (default: head).")
@click.option("--sql-dir", metavar="DIR", required=True, help="Write DIR/<database>/<NNNN>_<revision>.sql.")
@click.option("--json", "json_path", metavar="PATH", help="Also write the JSON report to PATH (- for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the last line.")
def sql(app: str | None, migrations: str | None, db: tuple[str, ...], from_revision: str | None,
        to_revision: str | None, sql_dir: str, json_path: str | None, quiet: bool, python: str | None) -> None:
    """Write the offline SQL (`flask db upgrade --sql`) of each revision, per database, for review; exit 1 when a
    revision cannot be rendered offline, or its SQL holds bound parameters instead of values. Starts no database."""
    from ..lint.review import review, text

    try:
        config = build_config(app=app, migrations=migrations, db=db, from_revision=from_revision,
                              to_revision=to_revision, checks=("upgrade",), python=python)
        config = dataclasses.replace(config, run_id=config.run_id or new_run_id())
        result = review(config, sql_dir)
    except HarnessError as exc:
        click.echo(f"migration-harness: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    output = text(result)
    click.echo(output.splitlines()[-1] if quiet else output, err=json_path == "-")
    if json_path:
        write_json_report(result.to_dict(), json_path)
    sys.exit(result.exit_code)
