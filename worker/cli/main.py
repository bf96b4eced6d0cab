"""Entry point: global options, sub-commands, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from worker import __version__
from worker.cli.backfill import backfill
from worker.cli.capture import capture_app
from worker.cli.consume import consume
from worker.cli.context import GlobalOptions
from worker.cli.cutover import cutover_app
from worker.cli.demo import demo
from worker.cli.dlq import dlq_app
from worker.cli.doctor import doctor
from worker.cli.health import health
from worker.cli.rebuild import rebuild
from worker.cli.relay import relay
from worker.cli.schema import schema_app
from worker.cli.status import status
from worker.cli.topics import topics_app
from worker.cli.verify import verify
from worker.errors import D1cdcError
from worker.logs import redact_text

app = typer.Typer(
    name="d1cdc",
    help=(
        "Replicate a Cloudflare D1 (SQLite) database into MySQL/PlanetScale through Kafka, "
        "continuously and verifiably.\n\n"
        "Settings come from flags, D1CDC_* environment variables, and an optional TOML file "
        "(--config / D1CDC_CONFIG); see the README for the full list."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # a pretty traceback would print local variables: secrets
    add_completion=False,
    # Plain click help: typer's rich panels print a type next to every flag (`--once <bool>`).
    rich_markup_mode=None,
)
# In the order of a migration (ops/runbook.md): check, schema, topics, replicate, prove.
app.command()(doctor)
app.add_typer(schema_app, name="schema")
app.add_typer(topics_app, name="topics")
app.add_typer(capture_app, name="capture")
app.command()(relay)
app.command()(consume)
app.command()(backfill)
app.command()(rebuild)
app.command()(verify)
app.command()(status)
app.add_typer(cutover_app, name="cutover")
app.add_typer(dlq_app, name="dlq")
app.command()(health)
app.command()(demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"d1cdc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", envvar="D1CDC_CONFIG", help="TOML file with settings (keys as fields)."
    ),
    log_format: str | None = typer.Option(
        None, help="auto | json | console (env D1CDC_LOG_FORMAT)."
    ),
    log_level: str | None = typer.Option(None, help="debug | info | warning | error."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = GlobalOptions(config, log_format, log_level)


def run() -> None:
    """Console script: a `D1cdcError` is one line on stderr and a non-zero exit code."""
    try:
        app()
    except D1cdcError as exc:
        print(f"d1cdc: error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
