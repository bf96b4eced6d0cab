"""`d1cdc status`: lag, watermarks, dead letters and the cut-over readiness verdict;
`--reverse`: the same for the reverse pipeline (MySQL → D1) and the rollback verdict."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.context import settings_from
from worker.cli.status_report import (
    FORWARD,
    REVERSE,
    Status,
    collect_status,
    readiness,
    rollback_safety,
)
from worker.console import make_console
from worker.db import target_engine
from worker.schema.mapping import load_mapping


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render(status: Status, reasons: list[str], console: Console) -> None:
    reverse = status.direction == REVERSE.name
    table = Table(title="d1cdc status, reverse (MySQL → D1)" if reverse else "d1cdc status")
    for name in ("table", "events", "applied", "lag", "last applied (UTC)", "watermark"):
        table.add_column(name, justify="left" if name in ("table", "watermark") else "right")
    for t in status.tables:
        table.add_row(
            t.table,
            str(t.end_offset),
            str(t.committed),
            str(t.lag),
            _when(t.last_applied_ms),
            t.watermark or "-",
            style="yellow" if t.lag else None,
        )
    console.print(table)
    console.print(f"dead letters pending: {status.dlq_pending}")
    if reverse:
        console.print(f"reverse group: {status.group_state}")
        if status.binlog is not None:
            console.print(
                f"binlog source at {status.binlog}: the verdict sees the reverse lag, not "
                "unread binlog; after the write freeze run `d1cdc backfill --reverse --binlog` "
                "once (it reads to the binlog's end)",
                markup=False,
            )
        if reasons:
            console.print("[bold red]rollback to D1: not safe[/] (" + "; ".join(reasons) + ")")
        else:
            console.print("[bold green]rollback to D1: safe[/]")
        return
    capture = status.capture
    if capture is None:
        console.print("capture: not installed in the source (shim and backfill only)")
    elif capture.error:
        console.print(f"capture: not checked ({capture.error})")
    else:
        triggers = "current" if not capture.problems else f"{len(capture.problems)} problem(s)"
        console.print(
            f"capture: triggers {triggers}; change log {capture.depth} entries, "
            f"relay lag {capture.lag_s:.1f} s"
        )
    run = status.last_verify
    console.print(
        "last verify: "
        + (
            "none"
            if run is None
            else f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{'clean' if run.clean else f'{run.differences} difference(s)'}"
        )
    )
    if reasons:
        console.print("[bold red]NOT READY for cut-over:[/] " + "; ".join(reasons))
    else:
        console.print("[bold green]READY for cut-over[/]")


def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    verify_max_age_minutes: float = typer.Option(
        60.0, min=0, help="A clean verify must be newer than this to be ready."
    ),
    reverse: bool = typer.Option(
        False,
        "--reverse",
        help="The reverse pipeline (MySQL → D1, after cut-over) and whether a rollback to D1 "
        "is safe.",
    ),
) -> None:
    """Show replication status; exit 0 when ready for cut-over (with --reverse: when a
    rollback to D1 is safe), 1 when not."""
    settings = settings_from(ctx)
    mapping = load_mapping(settings.mapping_path)
    engine = target_engine(settings, pool_size=1)
    try:
        current = collect_status(
            settings,
            [t.name for t in mapping.in_level_order()],
            engine,
            mapping=mapping,
            direction=REVERSE if reverse else FORWARD,
        )
    finally:
        engine.dispose()
    if reverse:
        reasons = rollback_safety(current)
    else:
        reasons = readiness(current, verify_max_age=timedelta(minutes=verify_max_age_minutes))
    if as_json:
        run = current.last_verify
        verdict = {"safe": not reasons} if reverse else {"ready": not reasons}
        body = {
            "direction": current.direction,
            **verdict,
            "reasons": reasons,
            "group_state": current.group_state,
            "dlq_pending": current.dlq_pending,
            "capture": None
            if current.capture is None
            else {
                "problems": current.capture.problems,
                "log_depth": current.capture.depth,
                "relay_lag_s": current.capture.lag_s,
                "error": current.capture.error,
            },
            "total_lag": current.total_lag,
            "last_verify": None
            if run is None
            else {
                "finished_at": run.finished_at.isoformat(),
                "clean": run.clean,
                "differences": run.differences,
            },
            "tables": [
                {
                    "table": t.table,
                    "end_offset": t.end_offset,
                    "committed": t.committed,
                    "lag": t.lag,
                    "last_applied_ms": t.last_applied_ms,
                    "watermark": t.watermark,
                }
                for t in current.tables
            ],
        }
        json.dump(body, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(current, reasons, make_console())
    if reasons:
        raise typer.Exit(1)
