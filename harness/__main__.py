"""``python -m harness`` is the ``migration-harness`` command."""
from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main(prog_name="migration-harness")
