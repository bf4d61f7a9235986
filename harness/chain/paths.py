"""Which code an app's process may import: ``compat`` runs the previous release's app from its own checkout, and a
working tree on ``sys.path`` (an editable install's ``.pth``, a ``PYTHONPATH``) would import the new release's code
in its place. The worker keeps such entries off the path before the app is imported, and reports any module that
came from there all the same. Imports only the standard library."""
from __future__ import annotations

import os
import sys
from typing import Any


def _inside(path: str, roots: Any) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root + os.sep) for root in roots)


def _environment_roots() -> list[str]:
    """The interpreter's own directories (a ``.venv`` inside the working tree is not the working tree's code)."""
    return [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]


def keep_off_path(forbidden: Any, replacement: str | None = None) -> list[str]:
    """Drop from ``sys.path`` every entry inside a ``forbidden`` directory (the working tree, when the previous
    release runs: an editable install's ``.pth`` or a ``PYTHONPATH`` would import the new code), mapping it to the
    same place under ``replacement`` (the previous release's checkout) when that exists; the entries dropped."""
    roots = [os.path.realpath(r) for r in forbidden]
    own = _environment_roots() + ([os.path.realpath(replacement)] if replacement else [])
    dropped: list[str] = []
    kept: list[str] = []
    for entry in sys.path:
        if entry and _inside(entry, roots) and not _inside(entry, own):
            dropped.append(entry)
            real = os.path.realpath(entry)
            root = next(r for r in roots if real == r or real.startswith(r + os.sep))
            if replacement:
                mapped = os.path.join(replacement, os.path.relpath(real, root))
                if os.path.isdir(mapped) and mapped not in kept:
                    kept.append(mapped)
            continue
        kept.append(entry)
    sys.path[:] = kept
    return dropped


def foreign_modules(forbidden: Any, allowed: str | None = None) -> list[str]:
    """Modules this process imported from a ``forbidden`` directory (the harness's own code and the interpreter's
    environment aside): proof that the previous release's worker ran only the previous release's code."""
    if not forbidden:
        return []
    roots = [os.path.realpath(r) for r in forbidden]
    harness_dir = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    own = _environment_roots() + [harness_dir] + ([os.path.realpath(allowed)] if allowed else [])
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and _inside(path, roots) and not _inside(path, own):
            found.append(f"{name} ({path})")
    return sorted(found)
