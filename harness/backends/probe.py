"""Ask Docker what became of a throwaway container, and remove it even when it is paused or Docker is gone.

Used after a failure, so that a server that died (``docker kill``, out of memory), froze (``docker pause``) or whose
engine stopped answering is reported as what it is, an environment fault, and never as a migration's failure.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from ..config.redact import redact

#: Docker's states of a container that will not answer again by itself
GONE = ("exited", "dead", "removing")


@dataclass(frozen=True)
class ContainerState:
    """What Docker says of a container: ``status`` is Docker's (``running``, ``paused``, ``exited``…) or
    ``unknown`` when Docker itself did not answer; ``text`` says it for people."""

    status: str
    text: str

    @property
    def broken(self) -> bool:
        """The server in it cannot answer: gone, or frozen."""
        return self.status in GONE or self.status == "paused"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text[:200], [])


def container_state(container: Any) -> ContainerState:
    """The state of a started testcontainers ``container``, asked of Docker now."""
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        state = wrapped.attrs.get("State", {})
    except Exception as exc:  # noqa: BLE001 - the engine stopped answering, or the container is gone
        if "404" in str(exc) or "no such container" in str(exc).lower():
            return ContainerState("exited", "the container no longer exists (removed by someone else)")
        return ContainerState("unknown", f"Docker does not answer ({_one_line(exc)})")
    status = str(state.get("Status", "unknown"))
    if state.get("Paused") or status == "paused":
        return ContainerState("paused", "the container is paused (docker pause): every statement waits")
    if status in GONE:
        code = int(state.get("ExitCode") or 0)
        return ContainerState(status, f"the container had exited with code {code}{_exit_cause(code, state)}")
    return ContainerState(status, f"the container is {status}")


def log_line_with(container: Any, markers: tuple[str, ...], tail: int = 200) -> str | None:
    """The last of the container's recent log lines that holds one of ``markers`` (lower case), e.g. PostgreSQL's
    ``PANIC: could not write to file "pg_wal/xlogtemp.64": No space left on device``, which its clients only see
    as a dropped connection."""
    try:
        text = container.get_wrapped_container().logs(tail=tail).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - Docker does not answer: nothing learnt
        return None
    lines = [line.strip() for line in text.splitlines() if any(m in line.lower() for m in markers)]
    return redact(lines[-1][:300], []) if lines else None


def _exit_cause(code: int, state: dict[str, Any]) -> str:
    if state.get("OOMKilled"):
        return " (out of memory: give Docker more memory)"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return ""
        return f" (killed by {name}: docker kill, or the out-of-memory killer)" if name == "SIGKILL" else f" ({name})"
    return ""


def remove_container(container: Any) -> str | None:
    """Remove ``container`` (unpaused first: a paused container's server cannot shut down); ``None`` when it is
    gone, else why it could not be removed."""
    try:
        wrapped = container.get_wrapped_container()
    except Exception:  # noqa: BLE001 - never started: nothing to remove
        return None
    try:
        wrapped.reload()
        if wrapped.status == "paused":
            wrapped.unpause()
    except Exception:  # noqa: BLE001 - the removal below says what is wrong
        pass
    try:
        container.stop()
    except Exception as exc:  # noqa: BLE001 - reported as a leftover, never raised out of the run
        if "404" in str(exc) or "no such container" in str(exc).lower():
            return None
        return _one_line(exc)
    return None


__all__ = ["ContainerState", "container_state", "log_line_with", "remove_container"]
