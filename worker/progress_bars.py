"""A rich progress bar per table (rows, rows/s, ETA); silent when logs are JSON lines."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from worker.console import make_console


class RowRateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


def progress_enabled(log_format: str) -> bool:
    """Bars only for a person at a terminal; JSON-log mode (containers, CI) stays quiet."""
    return log_format == "console" or (log_format == "auto" and sys.stderr.isatty())


class TableProgress:
    """`ProgressSink` drawing one bar per table on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            RowRateColumn(),
            TimeRemainingColumn(),
            console=make_console(stderr=True),
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TableProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, table: str, total: int | None) -> None:
        if table in self._tasks:
            self._progress.reset(self._tasks[table], total=total)
        else:
            self._tasks[table] = self._progress.add_task(table, total=total)

    def advance(self, table: str, rows: int) -> None:
        self._progress.advance(self._tasks[table], rows)
