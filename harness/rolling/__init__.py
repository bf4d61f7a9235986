"""``migration-harness compat``: rolling deploys. Proves, by running it, that the release still running (the previous
one) keeps working on the schema each new revision leaves, and that the new release works on the schema before
each one; classifies every new revision as expand / contract / breaking.

The package is named for what it checks (a rolling deploy): :mod:`harness.versions` is the home of the library
version shims. Modules: :mod:`.release` (the previous release, checked out of git), :mod:`.exercise` and
:mod:`.modes` (inside workers: the release's ORM against the database), :mod:`.classify` (which revision broke
what), :mod:`.command` (databases × steps), :mod:`.report` (text, JSON). It may import the harness's lower layers
(runner, process, backends, datagen, steps), never the CLI.

Layer: it may import ``estimate/``, ``reports/``, ``run/``, ``checks/``, ``chain/``, ``schema/``, ``datagen/``,
``backends/``, ``config/`` and the plain modules ``errors``, ``results``, ``versions``, ``_version`` (the layers
below it, tests/test_layout.py), never a package above it.
"""
