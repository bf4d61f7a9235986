"""Schema reflection (database → plain snapshot) and comparison (models ↔ database, snapshot ↔ snapshot).

Layer: it may import ``backends/``, ``config/`` and the plain modules ``errors``, ``results``, ``versions``,
``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
