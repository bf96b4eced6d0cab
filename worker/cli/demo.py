"""`d1cdc demo`: the whole pipeline on the demo D1 database, start to verified finish.

Generates the demo database, infers and applies the schema into a fresh target database,
creates topics, then runs the real workers — `d1cdc consume` and `d1cdc backfill --follow`
as child processes — while a stand-in app (producers/demo_app.py) writes to D1 and emits
through the shim. When the writer stops: a final backfill pass, wait for lag 0, stop the
workers (SIGTERM), and verify every table. Exit 0 only when verify finds 0 differences.
Each run uses its own topic prefix and target database, so it can be repeated.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.client import HTTPException
from pathlib import Path
from urllib.request import urlopen

import sqlalchemy as sa
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.live import Live
from rich.table import Table

from producers.demo_app import DemoApp, WriterStats
from producers.emitter import ChangeEmitter
from worker.cli.context import settings_from
from worker.cli.status_report import collect_status
from worker.cli.verify import render_table
from worker.config import Settings, load_settings
from worker.console import make_console
from worker.db import create_database, target_engine
from worker.demo.generate import generate_demo_db
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.infer import infer_mapping
from worker.schema.introspect import introspect, open_readonly
from worker.schema.mapping import Mapping
from worker.schema.writer import write_mapping
from worker.sources.sqlite import SqliteSource
from worker.topics import ensure_topics
from worker.verify.record import record_run
from worker.verify.runner import TableReport, verifier_for

console = make_console(stderr=True)


def _say(message: str) -> None:
    console.print(f"[bold cyan]demo[/] {message}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _events_applied(port: int) -> int:
    try:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (OSError, HTTPException):  # not up yet, restarting, or cut off mid-answer
        return 0
    return int(
        sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "d1cdc_events_applied_total"
        )
    )


class Workers:
    """`d1cdc consume` and `d1cdc backfill` as child processes with their own log files."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.env = {
            **os.environ,
            "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
            "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
            "D1CDC_GROUP_ID": settings.group_id,
            "D1CDC_SOURCE_PATH": str(settings.source_path),
            "D1CDC_MAPPING_PATH": str(settings.mapping_path),
            "D1CDC_LOG_FORMAT": "json",
        }
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.metrics_port = _free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, port: int = 0) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        env = {**self.env, "D1CDC_METRICS_PORT": str(port)}
        cmd = [sys.executable, "-m", "worker", *args]
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)

    def run(self, *args: str) -> None:
        with (self.logs / "backfill-final.log").open("ab") as log:
            cmd = [sys.executable, "-m", "worker", *args]
            subprocess.run(cmd, env=self.env, stdout=log, stderr=log, check=True, timeout=600)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise typer.Exit(_fail(f"{name} exited with {proc.returncode}; see {self.logs}"))

    def stop(self, name: str, timeout: float = 60.0) -> int:
        """SIGTERM, then wait: the workers finish their batch, commit and exit 0."""
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, timeout=20)


def _fail(message: str) -> int:
    console.print(f"[bold red]demo failed:[/] {message}")
    return 1


def _progress(
    stats: WriterStats, applied: int, lag: int | None, elapsed: float, phase: str
) -> Table:
    table = Table(title=f"d1cdc demo — {phase} ({elapsed:.0f} s)", show_header=True)
    for name in (
        "app writes",
        "inserts",
        "updates",
        "deletes",
        "not emitted",
        "events applied",
        "lag",
    ):
        table.add_column(name, justify="right")
    table.add_row(
        str(stats.total),
        str(stats.inserts),
        str(stats.updates),
        str(stats.deletes),
        str(stats.unemitted),
        str(applied),
        "-" if lag is None else str(lag),
    )
    return table


def _prepare(settings: Settings, scale: float, seed: int) -> Mapping:
    report = generate_demo_db(settings.source_path, scale=scale, seed=seed, overwrite=True)
    rows = sum(report.rows_per_table.values())
    _say(
        f"demo D1 database {settings.source_path}: {len(report.rows_per_table)} tables, {rows} rows"
    )
    with open_readonly(settings.source_path) as conn:
        result = infer_mapping(conn, introspect(conn))
    write_mapping(result.mapping, settings.mapping_path, notes=result.notes, force=True)
    _say(f"mapping inferred → {settings.mapping_path}")
    engine = target_engine(settings, pool_size=1)
    try:
        apply_mapping(engine, result.mapping)
    finally:
        engine.dispose()
    _say(f"schema applied to {settings.target_url_redacted()}")
    ensure_topics(
        admin_client(settings.kafka_bootstrap),
        settings.topic_prefix,
        result.mapping.tables,
        settings.topic_partitions,
        settings.topic_replication,
    )
    _say(f"topics {settings.topic_prefix}.* created")
    return result.mapping


def _verify(settings: Settings, mapping: Mapping) -> list[TableReport]:
    engine = target_engine(settings)
    source = SqliteSource(settings.source_path)
    try:
        reports = [
            verifier_for(t, source, engine, settle_seconds=1).run()
            for t in mapping.in_level_order()
        ]
        record_run(engine, reports)
        return reports
    finally:
        source.close()
        engine.dispose()


def _wait_caught_up(settings: Settings, mapping: Mapping, workers: Workers, timeout: float) -> int:
    """Poll lag until it is 0 twice in a row; returns the last lag seen."""
    engine = target_engine(settings, pool_size=1)
    deadline = time.monotonic() + timeout
    zero_seen = 0
    lag = -1
    try:
        while time.monotonic() < deadline and zero_seen < 2:
            workers.check_alive()
            lag = collect_status(
                settings, list(mapping.tables), engine, last_applied=False
            ).total_lag
            zero_seen = zero_seen + 1 if lag == 0 else 0
            time.sleep(0.5)  # polling a condition (lag) at a fixed cadence
    finally:
        engine.dispose()
    return lag


def demo(
    ctx: typer.Context,
    scale: float = typer.Option(1.0, min=0.001, help="Demo size; 1.0 ≈ 5,800 rows in 59 tables."),
    seconds: float = typer.Option(20.0, min=0, help="How long the live writer runs."),
    rate: float = typer.Option(40.0, min=1, help="Live writes per second."),
    workdir: Path = typer.Option(Path("demo"), help="Where the demo database and logs go."),
    seed: int = typer.Option(0, help="Seed of the demo database."),
    database: str = typer.Option(
        "d1cdc_demo", help="Target database, dropped and re-created on the target's server."
    ),
) -> None:
    """Run the whole pipeline on the demo D1 database and verify it: exit 0 = 0 differences."""
    base = settings_from(ctx)
    run_id = time.strftime("demo%Y%m%d%H%M%S") + f"-{os.getpid()}"
    target = sa.engine.make_url(base.target_url.get_secret_value()).set(database=database)
    engine = target_engine(base, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
    engine.dispose()
    create_database(base.target_url.get_secret_value(), database)
    settings = load_settings(
        None,
        **{
            **base.model_dump(),
            "target_url": target.render_as_string(hide_password=False),
            "topic_prefix": run_id,
            "group_id": f"{run_id}-apply",
            "source_path": workdir / "d1-demo.sqlite",
            "mapping_path": workdir / "d1cdc.mapping.toml",
        },
    )
    mapping = _prepare(settings, scale, seed)
    workers = Workers(settings, workdir)
    try:
        stats = _live(settings, mapping, workers, seconds, rate)
        _say("writer stopped; final backfill pass")
        workers.stop("backfill")
        workers.run("backfill")
        lag = _wait_caught_up(settings, mapping, workers, timeout=180)
        if lag != 0:
            raise typer.Exit(_fail(f"consumers did not catch up (lag {lag}); see {workers.logs}"))
        _say("caught up (lag 0); stopping the consumer")
        workers.stop("consume")
    finally:
        workers.stop_all()
    _say(f"app made {stats.total} writes ({stats.unemitted} bypassed the shim); verifying")
    reports = _verify(settings, mapping)
    render_table(reports, make_console())
    differences = sum(r.missing + r.extra + r.mismatched for r in reports)
    rows = sum(r.processed for r in reports)
    if differences:
        raise typer.Exit(_fail(f"verify found {differences} difference(s) in {rows} rows"))
    console.print(f"[bold green]verify: {rows} rows in {len(reports)} tables, 0 differences[/]")


def _live(
    settings: Settings, mapping: Mapping, workers: Workers, seconds: float, rate: float
) -> WriterStats:
    """Workers running, the app writing for `seconds`, with a live progress view."""
    workers.start("consume", "consume", port=workers.metrics_port)
    workers.start("backfill", "backfill", "--follow", "--interval", "2")
    emitter = ChangeEmitter.from_settings(settings, mapping)
    app = DemoApp(settings.source_path, emitter)
    done = threading.Event()

    def write() -> None:
        try:
            app.run(seconds, rate)
        finally:
            done.set()

    writer = threading.Thread(target=write, daemon=True)
    started = time.monotonic()
    writer.start()
    engine = target_engine(settings, pool_size=1)
    last_line = 0.0
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while not done.is_set():
            workers.check_alive()
            lag = collect_status(
                settings, list(mapping.tables), engine, last_applied=False
            ).total_lag
            view = _progress(
                app.stats,
                _events_applied(workers.metrics_port),
                lag,
                time.monotonic() - started,
                "live writes",
            )
            if console.is_terminal:
                live.update(view)
            elif time.monotonic() - last_line > 5:
                console.print(view)
                last_line = time.monotonic()
            done.wait(1.0)
    writer.join()
    emitter.flush()
    app.close()
    engine.dispose()
    return app.stats
