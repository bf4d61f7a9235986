"""The ``migration-harness`` command: one module per command (parse options, call the library, print, set the
exit code; no logic), the options and helpers they share in :mod:`harness.cli.common`. This package imports the
library, never the other way round; a command module imports only :mod:`.common` of its siblings.

Layer: it may import ``lint/``, ``rehearse/``, ``rolling/``, ``estimate/``, ``reports/``, ``run/``, ``checks/``,
``chain/``, ``schema/``, ``datagen/``, ``backends/``, ``config/`` and the plain modules ``errors``, ``results``,
``versions``, ``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations

import importlib

import click

from .._version import __version__
from .common import OneLineErrors

#: command → (module of this package, function): a command's module (and what it imports: SQLAlchemy, the Docker
#: client, rich) is imported when that command runs, so ``run`` starts its preflight before the rest is imported
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"),
    "merge": ("merge", "merge_reports"),
    "clean": ("clean", "clean"),
    "lint": ("lint", "lint"),
    "sql": ("lint", "sql"),
    "rehearse": ("rehearse", "rehearse"),
    "compat": ("compat", "compat"),
}


class Commands(OneLineErrors):
    """The commands of :data:`COMMANDS`, each imported when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, function = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)  # type: ignore[no-any-return]


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migration-harness")
def main() -> None:
    """Verify a Flask-Migrate chain on SQLite, PostgreSQL and MySQL before anyone deploys it."""


__all__ = ["main"]
