"""``--since REF``: a pre-push run checks what changed. Revisions whose file is the same as at the git ref REF are
applied in one go, unchecked (they were checked when they were new); a revision file added or changed since REF
(committed, staged, edited or untracked) is checked, and so is every revision above it, since it now runs on top of
a changed one."""
from __future__ import annotations

import os
import subprocess
from typing import AbstractSet as Set, Any, Sequence

from ..errors import ConfigError
from .history import Revision


def _git(cwd: str, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise ConfigError("--since needs git, which is not installed (or not on PATH)") from exc
    if done.returncode != 0:
        words = " ".join(done.stderr.split()) or f"git {' '.join(args)} exited with {done.returncode}"
        raise ConfigError(f"--since: {words}")
    return done.stdout


def changed_files(ref: str, cwd: str) -> set[str]:
    """Real paths of the files added or changed since ``ref`` in the working tree of ``cwd``'s repository."""
    _git(cwd, "rev-parse", "--is-inside-work-tree")
    top = _git(cwd, "rev-parse", "--show-toplevel").strip()
    try:
        _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ConfigError as exc:
        raise ConfigError(f"--since {ref}: not a commit of the repository at {top} (a branch, tag or commit: "
                          "e.g. origin/main; fetch it first)") from exc
    names = _git(top, "diff", "--name-only", "-z", "--no-renames", ref, "--").split("\0")
    names += _git(top, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    return {os.path.realpath(os.path.join(top, name)) for name in names if name}


def since_split(ref: str, changed: Set[str], revisions: Sequence[Revision]) -> dict[str, Any]:
    """``{"ref", "applied": [...], "checked": [...]}`` (revision ids, base first): what a ``--since`` run applies
    and what it checks (a changed revision and everything above it), given ``changed``: :func:`changed_files`."""
    checked = {r.revision for r in revisions if os.path.realpath(r.path) in changed}
    for r in revisions:  # parents before children: one pass carries the mark upwards
        if any(p in checked for p in r.down_revisions):
            checked.add(r.revision)
    return {"ref": ref, "applied": [r.revision for r in revisions if r.revision not in checked],
            "checked": [r.revision for r in revisions if r.revision in checked]}


def touches(changed: Set[str], cwd: str, directory: str) -> bool:
    """Whether a file under ``directory`` (the migrations directory, as far as it is known before the app loads)
    is one of ``changed`` (:func:`changed_files`) and is there now: a ``--since`` run that may check something,
    whose databases can start while the app loads."""
    root = os.path.realpath(os.path.join(cwd, directory))
    return any(path.startswith(root + os.sep) and path.endswith(".py") and os.path.isfile(path) for path in changed)


__all__ = ["changed_files", "since_split", "touches"]
