"""Rich progress bars on stderr (done/total, rate, ETA), one set-up for every command that
draws them; silent when logs are JSON lines or nobody watches."""

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


class RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "" if speed is None else f"{speed:,.0f} {self.unit}/s"
        return Text(shown, style="progress.data.speed")


def progress_bars(enabled: bool, unit: str = "rows") -> Progress:
    """The progress display of backfill, verify and rebuild: a bar per task, its
    description, done/total, `unit`s per second and the time left."""
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeRemainingColumn(),
        console=make_console(stderr=True),
        disable=not enabled,
    )


def progress_enabled(log_format: str) -> bool:
    """Bars only for a person at a terminal; JSON-log mode (containers, CI) stays quiet."""
    return log_format == "console" or (log_format == "auto" and sys.stderr.isatty())


class TableProgress:
    """`ProgressSink` drawing one bar per table on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = progress_bars(enabled)
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
