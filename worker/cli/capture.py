"""`d1cdc capture sql|install|check|uninstall`: change capture inside D1, from the mapping."""

from __future__ import annotations

from pathlib import Path

import typer

from producers.capture_drift import find_drift, installed_triggers, table_problems
from producers.capture_sql import install_statements, migration_text, uninstall_statements
from worker.cli.context import settings_from
from worker.errors import SchemaError
from worker.schema.mapping import load_mapping
from worker.sources import open_source

capture_app = typer.Typer(
    help=(
        "Capture every committed write inside D1: per-table triggers append to a change log "
        "(_d1cdc_changes) in the same transaction; `d1cdc relay` ships it to Kafka."
    ),
    no_args_is_help=True,
)
_MAPPING = typer.Option(None, "--mapping", help="Mapping file (default D1CDC_MAPPING_PATH).")


@capture_app.command("sql")
def sql(
    ctx: typer.Context,
    mapping_path: str | None = _MAPPING,
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write the migration here (e.g. migrations/0009_d1cdc_capture.sql).",
    ),
) -> None:
    """Print the capture migration: commit it next to Drizzle's, apply with wrangler."""
    settings = settings_from(ctx, mapping_path=mapping_path)
    text = migration_text(load_mapping(settings.mapping_path))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output} ({text.count(chr(10))} statements)", err=True)


@capture_app.command("install")
def install(ctx: typer.Context, mapping_path: str | None = _MAPPING) -> None:
    """Create the change log and the triggers in the source (SQLite file or D1 over HTTP),
    one statement per request; replaces stale triggers. Refuses when the tables do not match
    the mapping (a trigger naming a missing column would fail the app's writes)."""
    settings = settings_from(ctx, mapping_path=mapping_path)
    mapping = load_mapping(settings.mapping_path)
    source = open_source(settings, writable=True)
    try:
        blocking = [p for p in table_problems(mapping, source) if "not captured" not in p.problem]
        blocking = [p for p in blocking if p.table != "_d1cdc_changes"]
        if blocking:
            raise SchemaError(
                "capture not installed; the source does not match the mapping: "
                + "; ".join(str(p) for p in blocking)
            )
        statements = list(install_statements(mapping))
        for statement in statements:
            source.execute(statement)
        typer.echo(
            f"capture installed on {source.name}: {len(mapping.tables)} tables, "
            f"{len(statements)} statements",
            err=True,
        )
    finally:
        source.close()


@capture_app.command("check")
def check(ctx: typer.Context, mapping_path: str | None = _MAPPING) -> None:
    """Exit 1 when installed capture differs from what the mapping generates (missing,
    stale or extra triggers; uncaptured columns), naming each table. Run it in the app's
    CI after `wrangler d1 migrations apply --local`: it catches a drizzle-kit table rebuild."""
    settings = settings_from(ctx, mapping_path=mapping_path)
    mapping = load_mapping(settings.mapping_path)
    source = open_source(settings)
    try:
        drift = find_drift(mapping, source)
    finally:
        source.close()
    for item in drift:
        typer.echo(f"drift  {item}")
    if drift:
        typer.echo(f"capture check: {len(drift)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"capture check: {len(mapping.tables)} tables captured, triggers current")


@capture_app.command("uninstall")
def uninstall(ctx: typer.Context) -> None:
    """Drop every d1cdc trigger. The change log stays: it may hold unshipped entries."""
    settings = settings_from(ctx)
    source = open_source(settings, writable=True)
    try:
        names = sorted(installed_triggers(source))
        for statement in uninstall_statements(names):
            source.execute(statement)
    finally:
        source.close()
    typer.echo(f"dropped {len(names)} trigger(s); the change log was kept", err=True)
