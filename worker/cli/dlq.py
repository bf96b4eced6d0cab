"""`d1cdc dlq list | replay`: look at dead-lettered events and re-submit them after a fix."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from consumers.dlq import (
    DeadLetterRecord,
    acknowledge_dead_letters,
    read_dead_letters,
    replay_dead_letters,
)
from worker.cli.context import settings_from
from worker.cli.status_report import dlq_ack_group
from worker.config import Settings
from worker.console import make_console
from worker.topics import dlq_topic, topic_for

dlq_app = typer.Typer(help="List and replay dead-lettered events.", no_args_is_help=True)


def _records(
    settings: Settings, table: str | None, *, everything: bool = False
) -> list[DeadLetterRecord]:
    records = read_dead_letters(
        settings.kafka_bootstrap,
        dlq_topic(settings.topic_prefix),
        pending_for=None if everything else dlq_ack_group(settings.group_id),
    )
    if table is not None:
        wanted = topic_for(settings.topic_prefix, table)
        records = [r for r in records if r.topic == wanted]
    return records


@dlq_app.command("list")
def list_(
    ctx: typer.Context,
    table: str | None = typer.Option(None, help="Only events of this table."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout."),
    everything: bool = typer.Option(
        False, "--all", help="Also show events already replayed (the topic keeps them)."
    ),
) -> None:
    """Show pending dead-lettered events with their reason and origin."""
    records = _records(settings_from(ctx), table, everything=everything)
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in records], ensure_ascii=False, indent=2))
        return
    grid = Table("dlq offset", "origin", "key", "reason", title=f"{len(records)} dead letter(s)")
    for r in records:
        key = (r.key or b"").decode("utf-8", errors="replace")
        grid.add_row(
            f"{r.dlq_partition}:{r.dlq_offset}",
            f"{r.topic}[{r.partition}]@{r.offset}",
            key,
            r.reason,
        )
    make_console().print(grid)


@dlq_app.command()
def replay(
    ctx: typer.Context,
    table: str | None = typer.Option(None, help="Only events of this table."),
) -> None:
    """Re-produce pending dead-lettered events to their original topics (after a fix).

    Without --table, the replayed entries are then acknowledged: `dlq list` and `status`
    stop counting them (`dlq list --all` still shows them). Replaying an event twice is
    harmless (the apply path is idempotent); one that still fails returns to the topic.
    """
    settings = settings_from(ctx)
    records = _records(settings, table)
    count = replay_dead_letters(settings.kafka_bootstrap, records)
    if table is None:
        acknowledge_dead_letters(
            settings.kafka_bootstrap,
            dlq_topic(settings.topic_prefix),
            dlq_ack_group(settings.group_id),
            records,
        )
    typer.echo(f"replayed {count} event(s)", err=True)
