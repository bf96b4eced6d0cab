"""`d1cdc verify`: compare source and target per table; exit 0 clean, 1 differences, 2 error.

`--reverse` (after cut-over, issue 16) runs the same comparison with MySQL as the truth:
"missing" are rows MySQL has and D1 lacks, "extra" rows only D1 has; `--fix --reverse`
re-emits MySQL's side of every difference as reverse events, for the D1 sink to apply
(D1 is never written here). A reverse run is not recorded in `_d1cdc_verify_runs`: that
record is the forward cut-over's evidence (`status`, `cutover check`).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from producers.emitter import ChangeEmitter
from producers.reverse_events import REVERSE_ORIGIN, reverse_delete, reverse_upsert
from worker.cli.context import settings_from, table_names
from worker.config import Settings
from worker.console import make_console
from worker.db import target_engine
from worker.errors import ConfigError, D1cdcError
from worker.progress_bars import progress_bars
from worker.schema.mapping import Mapping, TableMapping, load_mapping
from worker.sources import Source, open_source
from worker.sources.base import quote_sqlite
from worker.topics import reverse_topic_for
from worker.verify.fix import emit_fixes
from worker.verify.metrics_file import write_verify_metrics
from worker.verify.readers import SourceChunks, TargetChunks
from worker.verify.record import record_run
from worker.verify.runner import TableReport, verifier_for

COLUMNS = ("processed", "matching", "mismatched", "missing", "extra", "in_flight")


def _count(source: Source, table: str) -> int:
    rows = source.query(f"SELECT count(*) AS n FROM {quote_sqlite(table)}", [])
    return int(rows[0]["n"])


def render_table(reports: list[TableReport], console: Console, *, reverse: bool = False) -> None:
    table = Table(title="d1cdc verify, MySQL as the truth" if reverse else "d1cdc verify")
    table.add_column("table")
    for name in COLUMNS:
        label = name.replace("_", " ")
        if reverse and name in ("missing", "extra"):
            label += " in D1"
        table.add_column(label, justify="right")
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
    reverse: bool = typer.Option(
        False,
        "--reverse",
        help="After cut-over: MySQL is the truth (missing = not in D1); --fix re-emits "
        "MySQL's rows as reverse events for `consume --into d1`.",
    ),
) -> None:
    """Compare every row of the source with the target, chunk by chunk, in key order."""
    if reverse and metrics_file is not None:
        raise ConfigError("verify --reverse --metrics-file: the row-delta metrics are forward's")
    settings = settings_from(ctx)
    # A D1cdcError here (no mapping, unknown table, no source) is one line and exit 2.
    mapping = load_mapping(settings.mapping_path)
    wanted = table_names(tables) or None
    chosen = [mapping.table(t) for t in wanted] if wanted else mapping.in_level_order()
    source = open_source(settings)
    engine = target_engine(settings)
    quiet = as_json or not make_console(stderr=True).is_terminal
    reports: list[TableReport] = []
    with progress_bars(not quiet) as progress:
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
                report = verifier.run()
            except D1cdcError as exc:
                report = TableReport(table.name, error=str(exc))
            reports.append(report.with_target_as_truth() if reverse else report)
    if not reverse:
        record_run(engine, reports)
    if metrics_file is not None:
        write_verify_metrics(metrics_file, reports)
    if fix and reverse:
        emitted = _fix_reverse(settings, chosen, reports, engine)
    elif fix:
        emitted = _fix(settings, mapping, chosen, reports, source)
    else:
        emitted = 0
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
        render_table(reports, make_console(), reverse=reverse)
        if fix:
            origin = REVERSE_ORIGIN if reverse else "fix"
            typer.echo(f"fix: re-emitted {emitted} event(s) through Kafka (origin '{origin}')")
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


def _fix_reverse(
    settings: Settings,
    chosen: list[TableMapping],
    reports: list[TableReport],
    engine: Engine,
) -> int:
    """MySQL's side of every difference as a reverse event: its current row for a key D1
    lacks or holds differently, a delete for a key only D1 has (reports with MySQL as the
    truth, keys as MySQL holds them)."""
    emitter = ChangeEmitter.from_settings(
        settings, topic_of=reverse_topic_for, origin=REVERSE_ORIGIN
    )
    emitted = 0
    by_name = {t.name: t for t in chosen}
    for report in reports:
        if report.clean or report.error is not None:
            continue
        table = by_name[report.table]
        for values in TargetChunks(engine, table).by_keys(
            [*report.missing_keys, *report.mismatched_keys]
        ):
            emitter.emit(reverse_upsert(table, dict(zip(table.column_names, values, strict=True))))
            emitted += 1
        for key in report.extra_keys:
            event = reverse_delete(table, dict(zip(table.primary_key, key, strict=True)))
            emitter.delete(table.name, event.key, origin=event.origin, ts_ms=event.ts_ms)
            emitted += 1
    emitter.flush()
    return emitted
