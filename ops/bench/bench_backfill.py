"""Benchmark: d1cdc backfill end to end vs sqlite3-to-mysql, same SQLite file, same run.

d1cdc path:  SQLite → backfill poller → Kafka → consume loop → MariaDB, timed from the
             first row read until the consumer group has committed every offset the
             backfill produced (i.e. every row is in MariaDB).
Baseline:    `sqlite3mysql` (PyPI `sqlite3-to-mysql`) copying the same file directly.

Both targets are fresh databases on the same server; row counts of both are checked
against the source afterwards. Usage (services from `ops/services.sh up`):

    eval "$(bash ops/services.sh env)"
    .venv/bin/python ops/bench/bench_backfill.py [--scale 175] [--db demo/bench.sqlite]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from bench_common import wait_for_group
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

import consumers.loop as consume_loop
from consumers.offsets import group_progress
from consumers.offsets import topic_offsets as offsets
from producers.backfill import BackfillOptions
from worker.cli.backfill import run_backfill
from worker.config import Settings, load_settings
from worker.db import create_database, create_target_engine
from worker.demo import BENCHMARK_SCALE, generate_demo_db, ground_truth_mapping
from worker.gc_tuning import tune_for_long_running_worker
from worker.kafka import admin_client
from worker.logs import configure_logging
from worker.schema.ddl import apply_mapping
from worker.topics import ensure_topics, topic_for


def source_counts(path: Path, tables: list[str]) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


def target_counts(url: str, tables: list[str]) -> dict[str, int]:
    engine = create_target_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(sa.text(f"SELECT count(*) FROM `{t}`")).scalar_one() for t in tables
            }
    finally:
        engine.dispose()


def database_url(server_url: str, name: str) -> str:
    create_database(server_url, name)
    url = sa.engine.make_url(server_url).set(database=name)
    return url.render_as_string(hide_password=False)


def consume(settings: Settings) -> None:
    """Child process: the ordinary consume loop, until SIGTERM.

    Completion is detected by the parent from the group's committed offsets (one admin
    request), so the loop's own periodic lag check is switched off for the measurement.
    """
    consume_loop.LAG_CHECK_EVERY_S = 1e9
    configure_logging(settings.log_format, settings.log_level)
    loop = consume_loop.ConsumeLoop(settings, ground_truth_mapping())
    tune_for_long_running_worker()  # as `d1cdc consume` does
    loop.run()


def run_d1cdc(
    db: Path,
    server_url: str,
    bootstrap: str,
    partitions: int,
    chunk: int,
    batch_size: int,
    consumers: int,
) -> float:
    name = f"bench_d1cdc_{uuid.uuid4().hex[:6]}"
    url = database_url(server_url, name)
    mapping = ground_truth_mapping()
    settings = load_settings(
        None, kafka_bootstrap=bootstrap, target_url=url, topic_prefix=name,
        group_id=f"{name}-apply", source_path=db, topic_partitions=partitions,
        batch_size=batch_size,
        metrics_port=0, log_format="json", log_level="warning",
    )  # fmt: skip
    apply_mapping(create_target_engine(url, pool_size=1), mapping)
    admin = admin_client(bootstrap)
    ensure_topics(admin, name, list(mapping.tables), partitions, 1)
    # Consumers are their own processes, as in production (`d1cdc consume` workers in one
    # group): in threads of this process they would share the GIL with the poller.
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=consume, args=(settings,)) for _ in range(consumers)]
    for worker in workers:
        worker.start()
    # Start the clock once every consumer has joined: a rebalance mid-run only measures
    # the group protocol (and can leave a commit to retry).
    wait_for_group(admin, settings.group_id, consumers)
    started = time.monotonic()
    emitted = run_backfill(
        settings, mapping, mapping.in_level_order(),
        BackfillOptions(chunk=chunk, detect_deletes=False),
    )  # fmt: skip
    backfilled = time.monotonic()
    topics = [topic_for(name, t) for t in mapping.tables]
    ends = offsets(admin, topics, OffsetSpec.latest())  # type: ignore[no-untyped-call]
    pending = [p for p, end in ends.items() if end > 0]
    while pending and all(w.is_alive() for w in workers):
        done = group_progress(admin, settings.group_id, topics).committed
        pending = [p for p in pending if done.get(p, -1) < ends[p]]
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.terminate()  # SIGTERM: the loop finishes its batch and leaves the group
    for worker in workers:
        worker.join(timeout=60)
    if pending:
        raise SystemExit("the consume loop died before catching up")
    print(f"d1cdc ({consumers} consumer processes): emitted {emitted} events; "
          f"backfill {backfilled - started:.1f} s, "
          f"caught up {elapsed:.1f} s")  # fmt: skip
    check(db, url, list(mapping.tables))
    drop_database(url, bootstrap, name)
    return elapsed


def run_sqlite3mysql(db: Path, server_url: str) -> float:
    name = f"bench_s3m_{uuid.uuid4().hex[:6]}"
    url = database_url(server_url, name)
    parsed = sa.engine.make_url(url)
    tool = shutil.which("sqlite3mysql", path=str(Path(sys.executable).parent)) or "sqlite3mysql"
    command = [
        tool, "-f", str(db), "-d", name, "-u", str(parsed.username),
        "-h", str(parsed.host), "-P", str(parsed.port or 3306), "--mysql-password",
        str(parsed.password),
        "-X",  # no foreign keys: d1cdc creates the target without them too (PlanetScale)
        "-q",
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    print(f"sqlite3mysql: {elapsed:.1f} s")
    check(db, url, list(ground_truth_mapping().tables))
    drop_database(url)
    return elapsed


def drop_database(url: str, bootstrap: str | None = None, prefix: str | None = None) -> None:
    """Remove what a run created (its database and, for d1cdc, its topics)."""
    name = sa.engine.make_url(url).database
    engine = create_target_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    engine.dispose()
    if bootstrap and prefix:
        admin = admin_client(bootstrap)
        topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(f"{prefix}.")]
        if topics:
            admin.delete_topics(topics, operation_timeout=30)


def check(db: Path, url: str, tables: list[str]) -> None:
    want, got = source_counts(db, tables), target_counts(url, tables)
    wrong = {t: (want[t], got[t]) for t in tables if want[t] != got[t]}
    if wrong:  # a copy that lost rows has no time worth comparing
        raise SystemExit(f"row counts DIFFER (source, target): {wrong}")
    print(f"  row counts match ({sum(got.values())} rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=BENCHMARK_SCALE)
    parser.add_argument("--db", type=Path, default=Path("demo/bench.sqlite"))
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=5000, help="backfill rows per page")
    parser.add_argument("--batch-size", type=int, default=5000, help="consumer batch")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes")
    args = parser.parse_args()
    server_url = os.environ.get(
        "D1CDC_TARGET_URL", "mysql+pymysql://d1cdc:d1cdc-local-pw@127.0.0.1:3306/d1cdc"
    )
    bootstrap = os.environ.get("D1CDC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if not args.db.exists():
        report = generate_demo_db(args.db, scale=args.scale, seed=0)
        print(f"generated {sum(report.rows_per_table.values())} rows in {report.seconds:.1f} s")
    rows = sum(source_counts(args.db, list(ground_truth_mapping().tables)).values())
    print(f"source: {args.db} with {rows} rows in {len(ground_truth_mapping().tables)} tables")
    d1cdc_s = run_d1cdc(
        args.db, server_url, bootstrap, args.partitions, args.chunk, args.batch_size,
        args.consumers,
    )  # fmt: skip
    baseline_s = run_sqlite3mysql(args.db, server_url)
    print(f"d1cdc end to end: {d1cdc_s:.1f} s ({rows / d1cdc_s:,.0f} rows/s)")
    print(f"sqlite3mysql:     {baseline_s:.1f} s ({rows / baseline_s:,.0f} rows/s)")
    print(f"ratio (sqlite3mysql / d1cdc): {baseline_s / d1cdc_s:.2f}x")


if __name__ == "__main__":
    main()
