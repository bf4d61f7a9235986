"""The ``migration-harness`` command: one module per command (parse options, call the library, print, set the
exit code; no logic), the options and helpers they share in :mod:`harness.cli.common`. This package imports the
library, never the other way round; a command module imports only :mod:`.common` of its siblings.

Layer: it may import ``lint/``, ``rehearse/``, ``rolling/``, ``estimate/``, ``reports/``, ``run/``, ``checks/``,
``chain/``, ``schema/``, ``datagen/``, ``backends/``, ``config/`` and the plain modules ``errors``, ``results``,
``versions``, ``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations

import click

from .._version import __version__
from .clean import clean
from .common import OneLineErrors
from .compat import compat
from .lint import lint, sql
from .merge import merge_reports
from .rehearse import rehearse
from .run import run


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migration-harness")
def main() -> None:
    """Verify a Flask-Migrate chain on SQLite, PostgreSQL and MySQL before anyone deploys it."""


for _command in (run, merge_reports, clean, lint, sql, rehearse, compat):
    main.add_command(_command)

__all__ = ["main"]
