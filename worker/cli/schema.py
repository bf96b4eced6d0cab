"""`d1cdc schema …`: infer the mapping, print/apply MySQL DDL, show table order, make a demo DB."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import typer

from worker.cli.context import settings_from
from worker.config import Settings
from worker.console import make_console
from worker.db import ping, target_engine
from worker.demo import BENCHMARK_SCALE, generate_demo_db
from worker.errors import ConfigError, ServiceError
from worker.schema.ddl import DIALECTS, apply_mapping, ddl_for_mapping
from worker.schema.infer import infer_mapping
from worker.schema.introspect import introspect, open_readonly
from worker.schema.lint import MAX_ROW_BYTES, lint_mapping, table_row_bytes
from worker.schema.mapping import Mapping, load_mapping
from worker.schema.order import dependency_levels
from worker.schema.writer import write_mapping

schema_app = typer.Typer(
    help="The mapping file (SQLite column → MySQL type), MySQL DDL, and table order.",
    no_args_is_help=True,
)
_stderr = make_console(stderr=True)

SOURCE = typer.Option(None, "--source", help="SQLite source file (env D1CDC_SOURCE_PATH).")
MAPPING = typer.Option(None, "--mapping", help="Mapping file (env D1CDC_MAPPING_PATH).")
INCLUDE = typer.Option(None, "--include", help="Only tables matching this glob (repeatable).")
EXCLUDE = typer.Option(None, "--exclude", help="Skip tables matching this glob (repeatable).")


def _sqlite_source(settings: Settings) -> Path:
    if settings.source != "sqlite":
        raise ConfigError(
            "schema commands read an SQLite file; set D1CDC_SOURCE=sqlite and D1CDC_SOURCE_PATH "
            "(export the D1 database with `wrangler d1 export` first)"
        )
    return settings.source_path


@schema_app.command()
def infer(
    ctx: typer.Context,
    source: Path | None = SOURCE,
    out: Path | None = typer.Option(None, "--out", help="Where to write (D1CDC_MAPPING_PATH)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing mapping file."),
    include: list[str] | None = INCLUDE,
    exclude: list[str] | None = EXCLUDE,
    samples: int = typer.Option(2000, min=1, help="Values sampled per column."),
) -> None:
    """Propose a mapping file from the source's schema and data, for a person to review."""
    settings = settings_from(ctx, source_path=source, mapping_path=out)
    with open_readonly(_sqlite_source(settings)) as conn:
        tables = introspect(conn, include=include or (), exclude=exclude or ())
        result = infer_mapping(conn, tables, samples=samples)
    write_mapping(result.mapping, settings.mapping_path, notes=result.notes, force=force)
    columns = [c for t in result.mapping.tables.values() for c in t.columns.values()]
    review = sum(1 for c in columns if c.reason)
    typer.echo(
        f"wrote {settings.mapping_path}: {len(result.mapping.tables)} tables, "
        f"{len(columns)} columns, {review} marked REVIEW"
    )
    for note in result.notes:
        typer.echo(f"note: {note}")


@schema_app.command()
def ddl(
    ctx: typer.Context,
    mapping: Path | None = MAPPING,
    dialect: str = typer.Option("mysql", help=f"One of {', '.join(DIALECTS)}."),
    foreign_keys: bool = typer.Option(False, "--foreign-keys", help="Emit FK constraints."),
) -> None:
    """Print the MySQL DDL for the mapping, in dependency order."""
    settings = settings_from(ctx, mapping_path=mapping)
    statements = ddl_for_mapping(
        load_mapping(settings.mapping_path), dialect=dialect, foreign_keys=foreign_keys
    )
    typer.echo(";\n\n".join(statements) + ";")


def _report_lint(loaded: Mapping, *, foreign_keys: bool) -> bool:
    """Print each PlanetScale-rule violation on its own line; True when there are none."""
    problems = lint_mapping(loaded, foreign_keys=foreign_keys)
    for problem in problems:
        typer.echo(f"lint: {problem}")
    if problems:
        typer.echo(f"{len(problems)} problem(s): change the mapping, then run this again")
    return not problems


@schema_app.command()
def lint(
    ctx: typer.Context,
    mapping: Path | None = MAPPING,
    foreign_keys: bool = typer.Option(
        False, "--foreign-keys", help="Lint as if FK constraints will be emitted."
    ),
) -> None:
    """Check the mapping against PlanetScale's schema rules (exit 1 naming each violation).

    Primary keys, key column types and lengths, column and table counts, identifier
    lengths, foreign keys, utf8mb4, and the 65,535-byte row limit. `schema apply` runs
    the same checks first.
    """
    settings = settings_from(ctx, mapping_path=mapping)
    loaded = load_mapping(settings.mapping_path)
    if not _report_lint(loaded, foreign_keys=foreign_keys):
        raise typer.Exit(1)
    widest = max(loaded.tables.values(), key=table_row_bytes, default=None)
    columns = sum(len(t.columns) for t in loaded.tables.values())
    largest = (
        f"; widest row {table_row_bytes(widest)} of {MAX_ROW_BYTES} bytes ({widest.name})"
        if widest
        else ""
    )
    typer.echo(f"ok: {len(loaded.tables)} tables, {columns} columns{largest}")


@schema_app.command()
def apply(
    ctx: typer.Context,
    mapping: Path | None = MAPPING,
    foreign_keys: bool = typer.Option(False, "--foreign-keys", help="Emit FK constraints."),
) -> None:
    """Create missing tables in the target; report drift (exit 1) without altering anything.

    The mapping is linted first (see `schema lint`); on any violation nothing is touched.
    """
    settings = settings_from(ctx, mapping_path=mapping)
    loaded = load_mapping(settings.mapping_path)
    if not _report_lint(loaded, foreign_keys=foreign_keys):
        typer.echo("schema apply: nothing was changed in the target")
        raise typer.Exit(1)
    engine = target_engine(settings, pool_size=1)
    try:
        ping(engine)
        try:
            report = apply_mapping(engine, loaded, foreign_keys=foreign_keys)
        except sa.exc.SQLAlchemyError as exc:
            cause = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise ServiceError(
                f"applying DDL to {settings.target_url_redacted()}: {cause}"
            ) from None
    finally:
        engine.dispose()
    typer.echo(
        f"{report.dialect}: created {len(report.created)} tables, "
        f"{len(report.existing)} already existed"
    )
    for drift in report.drift:
        typer.echo(f"drift: {drift}")
    if report.drift:
        typer.echo(f"{len(report.drift)} difference(s) between the target and the mapping")
        raise typer.Exit(1)


@schema_app.command()
def order(
    ctx: typer.Context,
    source: Path | None = SOURCE,
    include: list[str] | None = INCLUDE,
    exclude: list[str] | None = EXCLUDE,
) -> None:
    """Print the tables' dependency levels from the source's foreign keys."""
    settings = settings_from(ctx, source_path=source)
    with open_readonly(_sqlite_source(settings)) as conn:
        tables = introspect(conn, include=include or (), exclude=exclude or ())
    report = dependency_levels({t.name: [fk.ref_table for fk in t.foreign_keys] for t in tables})
    for level, names in enumerate(report.by_level()):
        typer.echo(f"Level {level}: {', '.join(names)}")
    for note in report.notes():
        typer.echo(f"note: {note}")


@schema_app.command()
def demo(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", help="Where to write (D1CDC_SOURCE_PATH)."),
    scale: float = typer.Option(
        1.0, help=f"Row-count multiplier: 1.0 ~ 5.8k rows; {BENCHMARK_SCALE:g} >= 1M rows."
    ),
    seed: int = typer.Option(0, help="Same seed and scale, same database."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Generate the demo D1 database (the user's schema, realistic Drizzle-stored rows)."""
    settings = settings_from(ctx, source_path=out)
    with _stderr.status(f"generating {settings.source_path} (scale {scale:g})…"):
        report = generate_demo_db(settings.source_path, scale=scale, seed=seed, overwrite=force)
    typer.echo(
        f"wrote {report.path}: {len(report.rows_per_table)} tables, {report.total_rows} rows "
        f"in {report.seconds:.1f} s"
    )
