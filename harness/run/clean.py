"""Find and remove what a crashed run (``kill -9``, a lost CI machine) left behind, and nothing else.

Only things the harness names can be found: containers labelled ``org.migration-harness.run=<run id>``, scratch
databases ``mharness_<run id>_<n>`` on the servers given by URL, and SQLite/preflight temporary directories
``mharness_<run id>_…``. A run that is still going on this machine registers itself (a file holding its pid in
``<tmp>/mharness_runs/``), and its things are left alone: ``clean`` never disturbs a concurrent run.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..backends import get_backend
from ..backends.names import CONTAINER_LABEL, SCRATCH_PREFIX
from ..config.redact import safe_url, secrets_of

RUNS_DIR = Path(tempfile.gettempdir()) / f"{SCRATCH_PREFIX}runs"
_SCRATCH_DB = re.compile(rf"^{SCRATCH_PREFIX}([0-9a-f]{{8}})_\d+$")
_TEMP_DIR = re.compile(rf"^{SCRATCH_PREFIX}([0-9a-f]{{8}})_")


def _first_line(exc: BaseException, hide: list[str] | None = None) -> str:
    from ..backends.base import first_line  # SQLAlchemy: not needed to register a run

    return first_line(exc, hide)


@contextmanager
def registered_run(run_id: str) -> Iterator[None]:
    """Mark ``run_id`` as alive (owned by this process) for as long as the block runs."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    marker = RUNS_DIR / run_id
    marker.write_text(str(os.getpid()))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def run_alive(run_id: str) -> bool:
    """Whether the run that owns ``run_id`` is still going on this machine."""
    try:
        pid = int((RUNS_DIR / run_id).read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Leftover:
    """One thing a dead run left: a ``container``, a ``database`` or a ``directory``, and where it is."""

    kind: str
    name: str
    where: str
    run_id: str

    @property
    def text(self) -> str:
        return f"{self.kind} {self.name} ({self.where}, run {self.run_id})"


@dataclass(frozen=True)
class CleanReport:
    removed: tuple[Leftover, ...]
    problems: tuple[str, ...]


def clean(urls: Mapping[str, str], *, dry_run: bool = False, run_ids: Iterable[str] = ()) -> CleanReport:
    """Remove the leftovers of dead runs: containers, scratch databases on ``urls`` (dialect → URL), temp dirs.

    With ``run_ids``, only those runs' (a CI job cleaning up after itself, next to other jobs sharing the Docker
    engine and the servers: their runs are not registered on this machine, so they would look dead).
    """
    wanted = set(run_ids)
    removed: list[Leftover] = []
    problems: list[str] = []
    removed += _containers(dry_run, problems, wanted)
    for dialect, url in urls.items():
        removed += _databases(dialect, url, dry_run, problems, wanted)
    removed += _directories(dry_run, wanted)
    return CleanReport(tuple(removed), tuple(problems))


def _dead(run_id: str, wanted: set[str]) -> bool:
    """A run whose things ``clean`` may remove: not alive here, and one of ``wanted`` when that is given."""
    return (not wanted or run_id in wanted) and not run_alive(run_id)


def _containers(dry_run: bool, problems: list[str], wanted: set[str]) -> list[Leftover]:
    try:
        import docker

        client = docker.from_env()
        containers = client.containers.list(all=True, filters={"label": CONTAINER_LABEL})
    except Exception as exc:  # no Docker here: nothing of ours can be running in it either
        problems.append(f"Docker not reachable, containers not checked: {_first_line(exc)}")
        return []
    out = []
    for container in containers:
        run_id = container.labels.get(CONTAINER_LABEL, "")
        if not _dead(run_id, wanted):
            continue
        if not dry_run:
            container.remove(force=True, v=True)
        out.append(Leftover("container", container.name, container.image.tags[0] if container.image.tags else "docker",
                            run_id))
    return out


def _databases(dialect: str, url: str, dry_run: bool, problems: list[str], wanted: set[str]) -> list[Leftover]:
    backend = get_backend(dialect)
    try:
        engine = backend.connect_admin(url)
    except Exception as exc:
        problems.append(f"{dialect}: cannot check {safe_url(url)}: {_first_line(exc, secrets_of(url))}")
        return []
    out = []
    try:
        with engine.connect() as conn:
            for name in backend.list_databases(conn):
                match = _SCRATCH_DB.match(name)
                if not match or not _dead(match.group(1), wanted):
                    continue
                if not dry_run:
                    backend.drop_database(conn, name)
                out.append(Leftover("database", name, safe_url(engine.url), match.group(1)))
    except Exception as exc:
        problems.append(f"{dialect}: cannot clean {safe_url(url)}: {_first_line(exc, secrets_of(url))}")
    finally:
        engine.dispose()
    return out


def _directories(dry_run: bool, wanted: set[str]) -> list[Leftover]:
    out = []
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        match = _TEMP_DIR.match(path.name)
        if not path.is_dir() or not match or not _dead(match.group(1), wanted):
            continue
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
        out.append(Leftover("directory", path.name, str(path.parent), match.group(1)))
    return out
