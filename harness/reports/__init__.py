"""Results to people and to CI systems: text and the JSON contract (:mod:`.report`), JUnit and Markdown
(:mod:`.formats`), HTML (:mod:`.html`), the live terminal view (:mod:`.live`) and the merge of several jobs' reports
(:mod:`.merge`). Results flow one way, worker events → runner → reporters: a reporter never reaches back into a run
(the merge asks :mod:`harness.run` only for the exit code of a result). Layer: it may import ``run/``, ``checks/``,
``chain/``, ``schema/``, ``datagen/``, ``backends/``, ``config/`` and the plain modules ``errors``, ``results``,
``versions``, ``_version`` (the layers below it, tests/test_layout.py), never a package above it.
"""
