"""`d1cdc relay`: the long-lived worker shipping D1's change log to Kafka."""

from __future__ import annotations

import typer

from producers.changelog import ChangeLog
from producers.emitter import ChangeEmitter
from producers.relay import Relay
from worker.cli.context import settings_from
from worker.logs import get_logger
from worker.metrics import Health, serve_health
from worker.schema.mapping import load_mapping
from worker.signals import stop_on_signals
from worker.sources import open_source
from worker.topics import ensure_table_topics

_log = get_logger("d1cdc.relay")


def relay(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Drain the change log, then exit 0."),
    batch_size: int | None = typer.Option(
        None, help="Entries per cycle (env D1CDC_RELAY_BATCH_SIZE)."
    ),
    interval: float | None = typer.Option(
        None, help="Seconds between polls of an empty log (env D1CDC_RELAY_INTERVAL_S)."
    ),
    metrics_port: int | None = typer.Option(
        None, help="HTTP /metrics, /healthz, /readyz port; 0 = off."
    ),
    mapping_path: str | None = typer.Option(None, "--mapping", help="Mapping file."),
) -> None:
    """Ship captured writes (the _d1cdc_changes log) to Kafka in commit order, as v1 events
    with origin "capture"; delete entries only after Kafka acknowledged them. One relay per
    database (a lease in the source refuses a second one)."""
    settings = settings_from(
        ctx,
        relay_batch_size=batch_size,
        relay_interval_s=interval,
        metrics_port=metrics_port,
        mapping_path=mapping_path,
    )
    mapping = load_mapping(settings.mapping_path)
    ensure_table_topics(settings, list(mapping.tables))
    source = open_source(settings, writable=True)
    emitter = ChangeEmitter.from_settings(settings, mapping, origin="capture")
    health = Health()
    server = serve_health(settings.metrics_port, health) if settings.metrics_port else None
    worker = Relay(
        ChangeLog(source),
        emitter,
        mapping,
        bootstrap=settings.kafka_bootstrap,
        batch_size=settings.relay_batch_size,
        interval_s=settings.relay_interval_s,
        lease_ttl_s=settings.relay_lease_s,
        health=health,
    )
    restore = stop_on_signals(worker.stop, deadline_s=settings.shutdown_deadline_s)
    try:
        outcome = worker.run(once=once)
    finally:
        restore()
        source.close()
        if server is not None:
            server.shutdown()
    typer.echo(
        f"relayed {outcome.shipped} change(s) in {outcome.cycles} cycle(s), "
        f"{outcome.dead_letters} dead-lettered",
        err=True,
    )
