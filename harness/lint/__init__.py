"""``migration-harness lint``: what each pending migration step will do to a live database.

Three sources of findings, one :class:`~harness.lint.findings.Finding` model:

* ``observed`` (:mod:`harness.lint.observe`): each step run on a scratch database that holds rows, and what the
  database really did (PostgreSQL locks and table rewrites, MySQL / MariaDB ALTER algorithms, SQLite table
  copies);
* ``sql`` (:mod:`harness.lint.rules`, :mod:`harness.lint.squawk`): rules on the offline SQL of each revision;
* ``offline`` (:mod:`harness.lint.offline`): a revision whose ``upgrade --sql`` cannot be generated.

Layer: it may import ``rehearse/``, ``rolling/``, ``estimate/``, ``reports/``, ``run/``, ``checks/``, ``chain/``,
``schema/``, ``datagen/``, ``backends/``, ``config/`` and the plain modules ``errors``, ``results``, ``versions``,
``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
