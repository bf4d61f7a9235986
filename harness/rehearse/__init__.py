"""``migration-harness rehearse``: rehearse the pending migrations on a read-only-read copy of production.

``source`` reads production read-only, ``copy`` recreates it on a throwaway server, ``drift`` compares it with
what its migrations build, ``steps`` is the worker mode that runs the pending steps, ``command`` orchestrates and
returns a :class:`~harness.rehearse.command.RehearseResult`, ``report`` prints it.

Layer: it may import ``estimate/``, ``reports/``, ``run/``, ``checks/``, ``chain/``, ``schema/``, ``datagen/``,
``backends/``, ``config/`` and the plain modules ``errors``, ``results``, ``versions``, ``_version`` (the layers
below it, tests/test_layout.py), never a package above it.
"""
from __future__ import annotations
