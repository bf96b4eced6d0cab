"""`d1cdc health`: a running worker's /healthz as an exit code (for container health checks)."""

from __future__ import annotations

from http.client import HTTPException
from urllib.error import HTTPError
from urllib.request import urlopen

import typer

from worker.cli.context import settings_from


def health(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None, help="Health URL; default http://127.0.0.1:{D1CDC_METRICS_PORT}/healthz."
    ),
) -> None:
    """Exit 0 when the local worker reports healthy, 1 otherwise (one line says why)."""
    settings = settings_from(ctx)
    target = url or f"http://127.0.0.1:{settings.metrics_port}/healthz"
    # The standard library's client: the image runs this every 15 s, for one local GET.
    try:
        with urlopen(target, timeout=4.0) as response:
            status, body = response.status, response.read().decode(errors="replace")
    except HTTPError as exc:  # it answered, with an error status
        status, body = exc.code, exc.read().decode(errors="replace")
    except (OSError, HTTPException, ValueError) as exc:  # refused, timed out, not HTTP
        typer.echo(f"unhealthy: {target} unreachable ({exc})", err=True)
        raise typer.Exit(1) from None
    if status != 200:
        typer.echo(f"unhealthy: {target} answered {status}: {body}", err=True)
        raise typer.Exit(1)
    typer.echo(f"healthy: {body.strip()}")
