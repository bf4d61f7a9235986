"""What the checks and the commands share below them: loading the app on a scratch database (:mod:`.app_env`,
:mod:`.binding`), what the worker needs of the app's stack (:mod:`.app_stack`), the revision graph (:mod:`.history`,
:mod:`.since`), each chain of a multi-database app (:mod:`.multidb`), running steps (:mod:`.steps`) and which code an
app's process may import (:mod:`.paths`). Worker-side: the standard library and the app's stack only; this
``__init__`` imports nothing. Layer: it may import ``backends/``, ``config/`` and the plain modules ``errors``,
``results``, ``versions``, ``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
