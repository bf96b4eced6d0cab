"""`d1cdc rebuild --target URL`: replay every topic from the beginning into a target."""

from __future__ import annotations

import typer

from consumers.rebuild import rebuild as run_rebuild
from worker.cli.context import settings_from
from worker.config import redact_url
from worker.gc_tuning import tune_for_long_running_worker
from worker.progress_bars import progress_bars, progress_enabled
from worker.schema.mapping import load_mapping


def rebuild(
    ctx: typer.Context,
    target: str = typer.Option(
        ..., "--target", help="SQLAlchemy URL of the (usually empty) database to rebuild."
    ),
    timeout: float | None = typer.Option(None, min=1, help="Give up after this many seconds."),
    mapping_path: str | None = typer.Option(None, "--mapping", help="Mapping file."),
) -> None:
    """Apply the schema to TARGET and replay all table topics into it, up to now."""
    settings = settings_from(ctx, mapping_path=mapping_path, target_url=target)
    mapping = load_mapping(settings.mapping_path)
    progress = progress_bars(progress_enabled(settings.log_format), unit="events")
    tune_for_long_running_worker()
    with progress:
        task = progress.add_task("replaying events", total=None)
        result = run_rebuild(
            settings,
            mapping,
            settings.target_url.get_secret_value(),
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            timeout_s=timeout,
        )
    typer.echo(
        f"rebuilt {redact_url(settings.target_url.get_secret_value())} from "
        f"{result.events} events on {result.partitions} partitions in {result.seconds:.1f} s "
        f"({result.messages_applied} applied, {result.dead_letters} dead-lettered)",
        err=True,
    )
