"""A run of the checks: the preflight (:mod:`.preflight`, started before the rest is imported), the runner
(databases × sessions, at once: :mod:`.runner`, :mod:`.sessions`), one worker per
database (:mod:`.process` starts it in the app's interpreter through :mod:`.floor`, :mod:`.worker` runs the checks,
:mod:`.serve` keeps one app load for several sessions), what a lost server or a killed worker means (:mod:`.faults`)
and the scratch databases a run leaves behind (:mod:`.clean`). The worker side (floor, worker, serve) runs in the
app's interpreter with nothing of the harness's own dependencies: it imports the standard library, the app's stack
and the worker-safe packages below; this ``__init__`` imports nothing, since the worker's bootstrap runs it there
too. Layer: it may import ``checks/``, ``chain/``, ``schema/``, ``datagen/``, ``backends/``, ``config/`` and the
plain modules ``errors``, ``results``, ``versions``, ``_version`` (the layers below it, tests/test_layout.py), never
a package above it.
"""
