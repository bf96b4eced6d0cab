"""`d1cdc health`: a running worker's /healthz as an exit code (for container health checks)."""

from __future__ import annotations

import httpx
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
    try:
        response = httpx.get(target, timeout=4.0)
    except httpx.HTTPError as exc:
        typer.echo(f"unhealthy: {target} unreachable ({exc})", err=True)
        raise typer.Exit(1) from None
    if response.status_code != 200:
        typer.echo(
            f"unhealthy: {target} answered {response.status_code}: {response.text}", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"healthy: {response.text.strip()}")
