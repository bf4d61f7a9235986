"""The previous release, on disk: a ``git worktree`` of ``--previous REF`` (never the working tree), or the
checkout given by ``--previous-path``; removed again afterwards."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..backends.base import SCRATCH_PREFIX
from ..errors import ConfigError


@dataclass(frozen=True)
class PreviousRelease:
    """Where the previous release's code is, and what it is."""

    label: str              # REF as given (``v1.4``), or the path
    commit: str | None      # the commit it resolves to, when known
    cwd: str                # the directory to run it from: the working directory's place in that checkout
    root: str               # the checkout's root
    working_root: str       # the working tree's root (the new release), which the previous one must never import

    def to_dict(self) -> dict[str, str | None]:
        return {"ref": self.label, "commit": self.commit, "path": self.root}


def _git(cwd: str, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ConfigError("--previous needs git on PATH (or give a checkout with --previous-path DIR)") from None
    if done.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} failed in {cwd}: {' '.join(done.stderr.split()) or done.returncode}")
    return done.stdout.strip()


def _repository(cwd: str) -> tuple[str, str]:
    """The working tree's root and the working directory's place in it (``""`` at the root)."""
    try:
        root = _git(cwd, "rev-parse", "--show-toplevel")
    except ConfigError:
        raise ConfigError(f"--previous REF needs the app's git repository, and {cwd} is not in one "
                          "(give a checkout of the previous release with --previous-path DIR)") from None
    return os.path.realpath(root), _git(cwd, "rev-parse", "--show-prefix")


@contextmanager
def previous_release(cwd: str, ref: str | None, path: str | None, run_id: str) -> Iterator[PreviousRelease]:
    """Check out ``ref`` into a temporary ``git worktree`` (detached; removed on exit), or use ``path`` as is."""
    if bool(ref) == bool(path):
        raise ConfigError("give the previous release with --previous REF (a tag, branch or commit) or "
                          "--previous-path DIR (a checkout of it), one of them")
    if path:
        root = os.path.realpath(os.path.join(cwd, os.path.expanduser(path)))
        if not os.path.isdir(root):
            raise ConfigError(f"--previous-path {path}: no such directory")
        try:
            working_root, prefix = _repository(cwd)
        except ConfigError:
            working_root, prefix = os.path.realpath(cwd), ""
        place = os.path.join(root, prefix)
        commit = None
        if os.path.isdir(os.path.join(root, ".git")) or os.path.isfile(os.path.join(root, ".git")):
            try:
                commit = _git(root, "rev-parse", "HEAD")
            except ConfigError:
                commit = None
        if os.path.realpath(root) == working_root:
            raise ConfigError(f"--previous-path {path} is the working tree itself: give a checkout of the previous "
                              "release (e.g. `git worktree add ../previous v1.4`)")
        yield PreviousRelease(path, commit, place if os.path.isdir(place) else root, root, working_root)
        return
    assert ref is not None
    working_root, prefix = _repository(cwd)
    try:
        commit = _git(working_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ConfigError:
        raise ConfigError(f"--previous {ref}: not a commit, tag or branch of {working_root} "
                          "(`git tag` lists the tags; fetch them first in a shallow CI checkout)") from None
    parent = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}_previous_")
    checkout = os.path.join(parent, "release")
    _git(working_root, "worktree", "add", "--detach", "--force", checkout, commit)
    try:
        place = os.path.join(checkout, prefix)
        if not os.path.isdir(place):
            raise ConfigError(f"--previous {ref}: the release has no {prefix or '.'} directory (where the app is "
                              "run from today)")
        yield PreviousRelease(ref, commit, place, checkout, working_root)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", checkout], cwd=working_root, capture_output=True,
                       timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=working_root, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)


def previous_migrations(migrations: str | None, cwd: str, release: PreviousRelease) -> str | None:
    """``--migrations`` as the previous release has it: the same place relative to the working directory (or to
    the repository, for a path inside it); ``None`` (the app's Migrate directory) when not given."""
    if not migrations:
        return None
    absolute = os.path.realpath(os.path.join(cwd, migrations))
    if absolute == release.working_root or absolute.startswith(release.working_root + os.sep):
        return os.path.join(release.root, os.path.relpath(absolute, release.working_root))
    if os.path.isabs(migrations):
        raise ConfigError(f"--migrations {migrations} is outside the repository: the previous release's own "
                          "migrations cannot be found from it")
    return migrations
