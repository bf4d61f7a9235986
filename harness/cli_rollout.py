"""Registers the rollout commands (``lint``, ``sql``, ``rehearse``) on the ``migration-harness`` group; each command's
click layer lives in its own module (:mod:`harness.cli_lint`, :mod:`harness.cli_rehearse`)."""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from .cli_lint import lint, sql
    from .cli_rehearse import rehearse

    group.add_command(lint)
    group.add_command(sql)
    group.add_command(rehearse)
