"""`d1cdc verify`: compare source and target per table; exit 0 clean, 1 differences, 2 error."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from producers.emitter import ChangeEmitter
from worker.cli.context import settings_from
from worker.config import Settings
from worker.console import make_console
from worker.db import target_engine
from worker.errors import D1cdcError
from worker.schema.mapping import Mapping, TableMapping, load_mapping
from worker.sources import Source, open_source
from worker.sources.base import quote_ident
from worker.verify.fix import emit_fixes
from worker.verify.metrics_file import write_verify_metrics
from worker.verify.readers import SourceChunks
from worker.verify.record import record_run
from worker.verify.runner import TableReport, verifier_for

COLUMNS = ("processed", "matching", "mismatched", "missing", "extra", "in_flight")


def _count(source: Source, table: str) -> int:
    rows = source.query(f"SELECT count(*) AS n FROM {quote_ident(table)}", [])
    return int(rows[0]["n"])


def render_table(reports: list[TableReport], console: Console) -> None:
    table = Table(title="d1cdc verify")
    table.add_column("table")
    for name in COLUMNS:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("samples / error")
    for r in reports:
        detail = r.error or (json.dumps(r.samples, default=str) if r.samples else "")
        style = None if r.clean else "red"
        table.add_row(
            r.table,
            *(str(getattr(r, c)) for c in COLUMNS),
            detail[:200],
            style=style,
        )
    console.print(table)


def verify(
    ctx: typer.Context,
    tables: str | None = typer.Option(None, help="Comma-separated tables (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document, no table."),
    fix: bool = typer.Option(
        False, help="Re-emit differing rows through Kafka (origin 'fix') for the consumers."
    ),
    chunk_rows: int = typer.Option(
        5000, min=1, max=100_000, help="Rows per compared chunk (PlanetScale returns ≤100k)."
    ),
    settle_seconds: float = typer.Option(
        2.0, min=0, help="Wait before re-checking differences (rows in flight settle)."
    ),
    checksums: bool = typer.Option(
        True, "--checksums/--no-checksums", help="Compare chunk checksums before rows."
    ),
    metrics_file: Path | None = typer.Option(
        None, help="Also write the result as a Prometheus textfile (for the row-delta alert)."
    ),
) -> None:
    """Compare every row of the source with the target, chunk by chunk, in key order."""
    settings = settings_from(ctx)
    # A D1cdcError here (no mapping, unknown table, no source) is one line and exit 2.
    mapping = load_mapping(settings.mapping_path)
    wanted = [t.strip() for t in tables.split(",")] if tables else None
    chosen = [mapping.table(t) for t in wanted] if wanted else mapping.in_level_order()
    source = open_source(settings)
    engine = target_engine(settings)
    console = make_console(stderr=True)
    quiet = as_json or not console.is_terminal
    reports: list[TableReport] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        for table in chosen:
            # Counting costs a scan (a D1 request): only when someone watches the bar.
            total = None if quiet else _count(source, table.name)
            task = progress.add_task(table.name, total=total)
            verifier = verifier_for(
                table,
                source,
                engine,
                checksums=checksums,
                chunk_rows=chunk_rows,
                settle_seconds=settle_seconds,
                on_progress=functools.partial(progress.advance, task),
            )
            try:
                reports.append(verifier.run())
            except D1cdcError as exc:
                reports.append(TableReport(table.name, error=str(exc)))
    record_run(engine, reports)
    if metrics_file is not None:
        write_verify_metrics(metrics_file, reports)
    emitted = _fix(settings, mapping, chosen, reports, source) if fix else 0
    engine.dispose()
    if as_json:
        body = {
            "clean": all(r.clean for r in reports),
            "fix_events": emitted,
            "tables": [r.as_dict() for r in reports],
        }
        json.dump(body, sys.stdout, default=str, indent=2)
        sys.stdout.write("\n")
    else:
        render_table(reports, make_console())
        if fix:
            typer.echo(f"fix: re-emitted {emitted} event(s) through Kafka (origin 'fix')")
    if any(r.error for r in reports):
        raise typer.Exit(2)
    if not all(r.clean for r in reports):
        raise typer.Exit(1)


def _fix(
    settings: Settings,
    mapping: Mapping,
    chosen: list[TableMapping],
    reports: list[TableReport],
    source: Source,
) -> int:
    emitter = ChangeEmitter.from_settings(settings, mapping, origin="fix")
    emitted = 0
    by_name = {t.name: t for t in chosen}
    for report in reports:
        if not report.clean and report.error is None:
            emitted += emit_fixes(report, SourceChunks(source, by_name[report.table]), emitter)
    emitter.flush()
    return emitted
