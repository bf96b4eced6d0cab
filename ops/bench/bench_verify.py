"""Benchmark: `verify` throughput on the demo database at ≥ 1M rows, both sides local.

Baseline, in the same process and on the same data: reading both sides in the same
keyset chunks without comparing, i.e. transferring every row (the floor of any verify that
compares rows; the checksum mode transfers only differing chunks, so it can beat it). The
figure that
survives a noisy machine is the ratio verify / baseline; the absolute rows/s is printed
too (issue target: ≥ 100k rows/s on a clean table).

    .venv/bin/python ops/bench/bench_verify.py [--scale 175] [--workdir /tmp/d1cdc-bench]

Needs the services (`eval "$(ops/services.sh env)"`). Loads the target directly with
converted rows (setup, not measured), then times baseline and verify per table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from worker.db import create_database, create_target_engine
from worker.demo import BENCHMARK_SCALE, generate_demo_db
from worker.schema.convert import convert_row
from worker.schema.ddl import apply_mapping
from worker.schema.infer import infer_mapping
from worker.schema.introspect import introspect, open_readonly
from worker.schema.mapping import Mapping, TableMapping
from worker.sources.sqlite import SqliteSource
from worker.verify.readers import SourceChunks, TargetChunks
from worker.verify.runner import verifier_for

CHUNK = 5000


def load_target(engine: sa.Engine, source: SqliteSource, table: TableMapping) -> None:
    target = sa.table(table.name, *(sa.column(c) for c in table.column_names))
    chunks = SourceChunks(source, table)
    last = None
    while rows := chunks.after(last, CHUNK):
        with engine.begin() as conn:
            conn.execute(target.insert(), [convert_row(table, r) for r in rows])
        last = tuple(rows[-1][k] for k in table.primary_key)


def read_both(source: SqliteSource, engine: sa.Engine, table: TableMapping) -> int:
    """The baseline: the same keyset chunks from both sides, no conversion, no compare."""
    src, tgt = SourceChunks(source, table), TargetChunks(engine, table)
    last, total = None, 0
    while True:
        rows = src.after(last, CHUNK)
        high = tuple(rows[-1][k] for k in table.primary_key) if len(rows) == CHUNK else None
        tgt.between(last, high)
        total += len(rows)
        if high is None:
            return total
        last = high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=BENCHMARK_SCALE)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/d1cdc-bench"))
    args = parser.parse_args()
    console = Console()
    url = os.environ["D1CDC_TARGET_URL"]
    db_path = args.workdir / f"demo-{args.scale}.sqlite"
    if not db_path.exists():
        report = generate_demo_db(db_path, scale=args.scale)
        console.print(
            f"generated {sum(report.rows_per_table.values())} rows in {report.seconds:.1f} s"
        )
    with open_readonly(db_path) as conn:
        mapping: Mapping = infer_mapping(conn, introspect(conn)).mapping
    database = f"bench_verify_{int(args.scale)}"
    engine = create_target_engine(url, pool_size=2)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
    engine.dispose()
    create_database(url, database)
    engine = create_target_engine(url, database=database)
    apply_mapping(engine, mapping)
    source = SqliteSource(db_path)
    started = time.monotonic()
    for table in mapping.in_level_order():
        load_target(engine, source, table)
    console.print(f"target loaded in {time.monotonic() - started:.1f} s (setup, not measured)")

    results = Table(title=f"verify throughput, demo scale {args.scale}")
    for name in ("", "rows", "seconds", "rows/s"):
        results.add_column(name, justify="right")
    started = time.monotonic()
    base_rows = sum(read_both(source, engine, t) for t in mapping.in_level_order())
    base_s = time.monotonic() - started
    results.add_row(
        "baseline: read both sides", str(base_rows), f"{base_s:.1f}", f"{base_rows / base_s:,.0f}"
    )
    ratios = []
    for label, checksums in (("verify, row diff only", False), ("d1cdc verify", True)):
        started = time.monotonic()
        reports = [
            verifier_for(t, source, engine, checksums=checksums, chunk_rows=CHUNK).run()
            for t in mapping.in_level_order()
        ]
        seconds = time.monotonic() - started
        rows = sum(r.processed for r in reports)
        assert all(r.clean for r in reports), [r.as_dict() for r in reports if not r.clean]
        results.add_row(label, str(rows), f"{seconds:.1f}", f"{rows / seconds:,.0f}")
        ratios.append(f"{label}: {base_s / seconds:.2f}x")
    console.print(results)
    console.print("throughput relative to the baseline: " + "; ".join(ratios))
    engine.dispose()


if __name__ == "__main__":
    main()
