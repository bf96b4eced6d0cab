"""`d1cdc dlq list | replay | discard`: look at dead letters, re-submit them after a fix,
or discard them with a recorded reason."""

from __future__ import annotations

import json
from collections.abc import Callable

import typer
from rich.table import Table

from consumers.dlq import (
    DISCARDS_TABLE,
    DeadLetterRecord,
    acknowledge_dead_letters,
    others_acknowledged,
    read_dead_letters,
    record_discards,
    replay_dead_letters,
)
from worker.cli.context import settings_from
from worker.cli.status_report import dlq_ack_group
from worker.config import Settings
from worker.console import make_console
from worker.db import target_engine
from worker.envelope import decode_event
from worker.errors import ConfigError, EnvelopeError
from worker.schema.mapping import load_mapping
from worker.sources import open_source
from worker.sources.base import rows_by_keys
from worker.topics import dlq_topic, topic_for

dlq_app = typer.Typer(help="List, replay or discard dead-lettered events.", no_args_is_help=True)
Letter = tuple[int, int]  # (dlq partition, dlq offset)


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
    check_source: bool = typer.Option(
        True,
        "--check-source/--no-check-source",
        help="Skip events the source has since overtaken (an upsert of a row the source no "
        "longer has, a delete of a row it has again); they are recorded as discarded.",
    ),
) -> None:
    """Re-produce pending dead-lettered events to their original topics (after a fix).

    A replayed event must not win over the source's current state, so by default each one
    is checked against the source first. Without --table, the replayed and skipped entries
    are then acknowledged: `dlq list` and `status` stop counting them (`dlq list --all`
    still shows them). Replaying an event twice is harmless (the apply path is
    idempotent); one that still fails returns to the topic.
    """
    settings = settings_from(ctx)
    records = _records(settings, table)
    overtaken = _overtaken_at_source(settings, records) if check_source else {}
    fresh = [r for r in records if (r.dlq_partition, r.dlq_offset) not in overtaken]
    count = replay_dead_letters(settings.kafka_bootstrap, fresh)
    if overtaken:
        _record(
            settings,
            [r for r in records if (r.dlq_partition, r.dlq_offset) in overtaken],
            lambda r: "replay skipped: " + overtaken[r.dlq_partition, r.dlq_offset],
        )
    if table is None:
        acknowledge_dead_letters(
            settings.kafka_bootstrap,
            dlq_topic(settings.topic_prefix),
            dlq_ack_group(settings.group_id),
            records,
        )
    typer.echo(
        f"replayed {count} event(s)"
        + (f"; skipped {len(overtaken)} the source has overtaken" if overtaken else ""),
        err=True,
    )


@dlq_app.command()
def discard(
    ctx: typer.Context,
    reason: str = typer.Option(..., "--reason", help="Why they are discarded (recorded)."),
    table: str | None = typer.Option(None, help="Only events of this table."),
) -> None:
    """Discard pending dead letters for good: recorded with the reason in the target's
    `_d1cdc_dlq_discards`, then acknowledged, so `status` stops counting them."""
    if not reason.strip():
        raise ConfigError("dlq discard --reason: say why (it is recorded)")
    settings = settings_from(ctx)
    records = _records(settings, table)
    behind = others_acknowledged(records, _records(settings, None))
    if behind:
        raise ConfigError(
            f"dlq discard --table {table}: {len(behind)} dead letter(s) of other tables lie "
            "before these in the topic and would be acknowledged too; replay or discard them "
            "first (or discard without --table)"
        )
    written = _record(settings, records, lambda _r: reason)
    acknowledge_dead_letters(
        settings.kafka_bootstrap,
        dlq_topic(settings.topic_prefix),
        dlq_ack_group(settings.group_id),
        records,
    )
    typer.echo(f"discarded {written} dead letter(s), recorded in {DISCARDS_TABLE}", err=True)


def _record(
    settings: Settings,
    records: list[DeadLetterRecord],
    why: Callable[[DeadLetterRecord], str],
) -> int:
    engine = target_engine(settings, pool_size=1)
    try:
        return record_discards(engine, [(r, why(r)) for r in records])
    finally:
        engine.dispose()


def _overtaken_at_source(settings: Settings, records: list[DeadLetterRecord]) -> dict[Letter, str]:
    """Letters whose event the source has since overtaken, with why. Letters that are not
    events of a mapped table (the poison kind) are not judged here: they are replayed."""
    mapping = load_mapping(settings.mapping_path)
    source = open_source(settings)
    verdicts: dict[Letter, str] = {}
    try:
        for record in records:
            try:
                event = decode_event(record.value)
                table = mapping.tables[event.table]
                key = tuple(event.key[c] for c in table.primary_key)
            except (EnvelopeError, KeyError):
                continue
            present = bool(rows_by_keys(source, table.name, table.primary_key, [key]))
            letter = (record.dlq_partition, record.dlq_offset)
            if event.op == "upsert" and not present:
                verdicts[letter] = "the source no longer has this row"
            elif event.op == "delete" and present:
                verdicts[letter] = "the source has this row again"
    finally:
        source.close()
    return verdicts
