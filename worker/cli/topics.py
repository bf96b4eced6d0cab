"""`d1cdc topics create`: the per-table compacted topics and the dead-letter topic."""

from __future__ import annotations

import typer

from worker.cli.context import settings_from
from worker.schema.mapping import load_mapping
from worker.topics import ensure_table_topics

topics_app = typer.Typer(help="Manage the Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def create(
    ctx: typer.Context,
    partitions: int | None = typer.Option(None, min=1, help="Partitions per new topic."),
    replication: int | None = typer.Option(None, min=1, help="Replication factor."),
    mapping_path: str | None = typer.Option(None, "--mapping", help="Mapping file."),
) -> None:
    """Create missing topics (idempotent); warn about existing non-compacted table topics."""
    settings = settings_from(
        ctx, topic_partitions=partitions, topic_replication=replication, mapping_path=mapping_path
    )
    mapping = load_mapping(settings.mapping_path)
    report = ensure_table_topics(settings, list(mapping.tables))
    for name in report.created:
        typer.echo(f"created  {name}")
    for name in report.existing:
        if name not in report.created:
            note = "  (NOT compacted)" if name in report.not_compacted else ""
            typer.echo(f"exists   {name}{note}")
