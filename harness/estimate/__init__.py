"""How long each pending step will hold its locks on production: measured on scratch databases at two or more
generated sizes, fitted per row, extrapolated to production's row counts (read from its catalogue).

* :mod:`~harness.estimate.fill` fills every table of a scratch database to N rows quickly (rows shaped like the
  columns: :mod:`harness.datagen` makes a few, bulk statements multiply them);
* :mod:`~harness.estimate.measure` is the worker mode ``estimate``: lint's observed run of each pending step
  (:mod:`harness.lint.observe`) on tables of N rows, timed;
* :mod:`~harness.estimate.run` runs that worker once per size, each on its own scratch database;
* :mod:`~harness.estimate.fit` turns the measurements and production's sizes into one
  :class:`~harness.estimate.fit.StepEstimate` per step, and says when one exceeds the lock budget.

It imports :mod:`harness.datagen`, :mod:`harness.lint.observe` (in the worker only) and the run machinery; the
commands (``lint``, ``rehearse``) import it, never the other way round.

Layer: it may import ``run/``, ``checks/``, ``chain/``, ``schema/``, ``datagen/``, ``backends/``, ``config/`` and the
plain modules ``errors``, ``results``, ``versions``, ``_version`` (the layers below it, tests/test_layout.py), never
a package above it.
"""
from __future__ import annotations

#: the sizes (rows in every table) each step is measured at, unless configured
DEFAULT_SIZES: tuple[int, ...] = (10_000, 100_000)
#: the longest a lock that blocks writes may be held on production, by default (seconds)
DEFAULT_LOCK_BUDGET_S = 5.0
