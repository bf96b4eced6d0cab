"""`d1cdc consume`: the long-lived consumer worker (or a run until caught up)."""

from __future__ import annotations

import typer

from consumers.loop import ConsumeLoop
from worker.cli.context import settings_from, table_names
from worker.gc_tuning import tune_for_long_running_worker
from worker.metrics import Health, serve_health
from worker.schema.mapping import load_mapping


def consume(
    ctx: typer.Context,
    until_caught_up: bool = typer.Option(
        False,
        "--until-caught-up",
        help=(
            "Exit 0 once the consumer group has committed every partition of every subscribed "
            "topic through its end offset (not only this member's share) and is not rebalancing."
        ),
    ),
    into: str | None = typer.Option(
        None,
        "--into",
        help="mysql: the table topics into MySQL (default); d1: the reverse topics into the "
        "source, after cut-over (D1CDC_CONSUME_INTO).",
    ),
    tables: list[str] | None = typer.Option(
        None, "--tables", help="Only these tables (repeat or comma-separate). Default: all."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=1, help="Give up (exit non-zero) after this many seconds."
    ),
    batch_size: int | None = typer.Option(None, help="Events per consume batch."),
    group_id: str | None = typer.Option(
        None, help="Consumer group id (with --into d1: the reverse group's)."
    ),
    metrics_port: int | None = typer.Option(None, help="HTTP /metrics port; 0 = off."),
    session_timeout_ms: int | None = typer.Option(
        None,
        min=6000,
        help="Kafka session timeout: how soon a crashed worker's partitions move "
        "(D1CDC_CONSUMER_SESSION_TIMEOUT_MS, 45000).",
    ),
) -> None:
    """Apply change events from Kafka to MySQL (or, with --into d1, MySQL's changes back
    into D1): idempotent, stale-safe, poison-isolated."""
    settings = settings_from(
        ctx,
        consume_into=into,
        batch_size=batch_size,
        group_id=group_id,
        metrics_port=metrics_port,
        consumer_session_timeout_ms=session_timeout_ms,
    )
    if group_id and settings.consume_into == "d1":
        settings = settings.model_copy(update={"reverse_group_id": group_id})
    mapping = load_mapping(settings.mapping_path)
    selected = table_names(tables)
    for name in selected:
        mapping.table(name)  # an unknown name is a one-line error, before connecting
    health = Health()
    server = serve_health(settings.metrics_port, health) if settings.metrics_port else None
    loop = ConsumeLoop(
        settings, mapping, tables=selected or None, health=health, into=settings.consume_into
    )
    tune_for_long_running_worker()
    try:
        outcome = loop.run(until_caught_up=until_caught_up, timeout_s=timeout)
    finally:
        loop.close()
        if server is not None:
            server.shutdown()
    typer.echo(
        f"consumed {outcome.messages} messages in {outcome.batches} batches, "
        f"{outcome.dead_letters} dead-lettered" + (", caught up" if outcome.caught_up else ""),
        err=True,
    )
