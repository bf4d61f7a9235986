"""Registers the rollout commands (``lint``, ``rehearse``) on the ``migration-harness`` group; each command's
click layer lives in its own module (:mod:`harness.cli_lint`, :mod:`harness.cli_rehearse`)."""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    for module, name in (("harness.cli_lint", "lint"), ("harness.cli_rehearse", "rehearse")):
        try:
            command = getattr(__import__(module, fromlist=[name]), name)
        except ImportError:  # pragma: no cover - while a command is being built
            continue
        group.add_command(command)
