"""Progress a person can follow on a terminal: a live line per database (spinner, phase, the step as it happens,
elapsed time) kept at the bottom, with each check's verdict printed above it as it ends. Not a terminal (CI logs):
:class:`~harness.reports.report.TextReporter`'s plain lines instead."""
from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..config import DatabaseSettings
from .report import TextReporter
from ..results import CheckResult, DatabaseResult


class LiveReporter(TextReporter):
    """Used as a context manager around a run: ``with LiveReporter() as reporter: run(config, reporter)``."""

    def __init__(self, verbose: bool = False, color: bool | None = None) -> None:
        super().__init__(verbose=verbose, steps=False)
        self.console = Console(no_color=color is False, force_terminal=True if color else None, highlight=False)
        self.rows: dict[str, dict[str, Any]] = {}
        self._live_lock = threading.Lock()
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._render)

    def __enter__(self) -> LiveReporter:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.stop()

    def _render(self) -> Any:
        table = Table.grid(padding=(0, 1))
        with self._live_lock:
            rows = list(self.rows.items())
        for dialect, row in rows:
            elapsed = f"{time.monotonic() - row['started']:.0f}s"
            spinner = Spinner("dots", style="cyan") if not row.get("done") else Text("✓" if row["ok"] else "✗")
            table.add_row(spinner, Text(f"{dialect:<11}", style="bold"), Text(row["phase"]), Text(elapsed, style="dim"))
        return Group(table)

    def _echo(self, line: str) -> None:
        if not self.quiet:
            self.console.print(Text.from_ansi(line))

    def database_started(self, settings: DatabaseSettings) -> None:
        with self._live_lock:
            self.rows[settings.dialect] = {"started": time.monotonic(), "phase": "starting", "done": False}
        super().database_started(settings)

    def step_started(self, dialect: str, step: dict[str, Any]) -> None:
        check = (step.get("check") or "") + (f"[{step['bind']}]" if step.get("bind") is not None else "")
        phase = (f"{check} {'up' if step['direction'] == 'up' else 'down'} "
                 f"{step.get('index', '?')}/{step.get('total', '?')}  {step['revision']} {step.get('message') or ''}")
        with self._live_lock:
            if dialect in self.rows:
                self.rows[dialect]["phase"] = phase.strip()

    def check_finished(self, dialect: str, check: CheckResult) -> None:
        super().check_finished(dialect, check)

    def database_finished(self, result: DatabaseResult) -> None:
        with self._live_lock:
            row = self.rows.setdefault(result.dialect, {"started": time.monotonic()})
            row.update(done=True, ok=result.status in ("passed", "skipped"), phase=result.status)
        super().database_finished(result)


__all__ = ["LiveReporter"]
