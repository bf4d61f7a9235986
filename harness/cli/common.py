"""What every command of the ``migration-harness`` CLI shares: exit codes, the signal handler, the one-line usage
errors, the options that load the app, and the JSON writer. Imports nothing of the commands (no cycles)."""
from __future__ import annotations

import json
import signal
import sys
import warnings
from typing import Any, Callable

import click

from ..reports.report import write_atomically

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 4

# Tables that reference each other (users.team_id <-> teams.captain_id) are a normal schema; SQLAlchemy warns about
# each cycle every time it sorts them, which would bury the verdict. The copy and the comparisons handle cycles.
warnings.filterwarnings("ignore", message="Cannot correctly sort tables")  # SQLAlchemy's SAWarning: not imported yet


def interrupt(signum: int, frame: Any) -> None:
    """The first SIGINT / SIGTERM stops the run; later ones are ignored so that the cleanup it starts (stop the
    worker, drop the scratch databases, remove the containers) is not itself cut short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """SIGINT and SIGTERM stop the command through :func:`interrupt`."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


class NoCommand(click.UsageError):
    """No command given: the help is the message (exit 2)."""


class OneLineErrors(click.Group):
    """Usage errors (unknown option, a value that is not a number…) as one ``migration-harness: error:`` line with
    exit 2, like every other bad input, instead of click's three-line usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # No command: the harness's own error on every click version (8.2+ raise NoArgsIsHelpError here, 8.0 and
        # 8.1 print the help and exit 0, which would make a CI step that forgot the command pass).
        if not args and not ctx.resilient_parsing:
            raise NoCommand(ctx.get_help(), ctx)
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except NoCommand as exc:  # show the help, exit 2
            click.echo(exc.message, err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(f"migration-harness: error: {exc.format_message()} (see --help)", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            sys.exit(EXIT_INTERRUPTED)


def app_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--app``, ``--migrations`` and ``--python``: how every command that loads the app finds it."""
    for option in reversed((
        click.option("--app", "app", metavar="APP", help="The Flask app, as for `flask --app` (default: FLASK_APP)."),
        click.option("--migrations", metavar="DIR",
                     help="The migrations directory (default: the app's Migrate directory)."),
        click.option("--python", "python", metavar="PATH",
                     help="The app's interpreter, which loads the app (default: the active virtualenv's, else "
                          "this one)."),
    )):
        command = option(command)
    return command


def write_json_report(data: dict[str, Any], path: str) -> None:
    """The JSON report at ``path`` (atomically), or on standard output for ``-``."""
    body = json.dumps(data, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(body)
    else:
        write_atomically(path, body)
