"""What one `d1cdc consume` process loses to its own GIL: the MySQL sink alone, and beside
CPU work, against the bare batched upsert of the same rows, in the same rounds.

The rows are the demo workload's (ops/bench/bench_apply.py), converted beforehand and cut
into the batches the pipeline forms (up to 2,000 changes, a few hundred per table, about
seven tables each). Each round applies them with `MySQLSink` and 1, then 2 connections
alone; with 2 beside a Python thread of this process that computes a share of the time
(the consume loop's decoding does: ~24 ms of each ~58 ms batch cycle, stop 25); and beside
a separate process that computes all the time (CPU contention without the GIL).

Usage: eval "$(bash ops/services.sh env)"; .venv/bin/python ops/bench/bench_sink_gil.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_apply import Workload, bare_insert_all, demo_workload, drop_database, fresh_database

from consumers.change import Change, MessageRef
from consumers.coalesce import coalesce_batch
from consumers.sink import MySQLSink
from consumers.versions import encode_version
from worker.db import create_target_engine
from worker.schema.convert import convert_row, version_of

CYCLE_S = 0.025  # the busy thread's period: computes `duty` of it, sleeps the rest


def pipeline_batches(workload: Workload, per_table: int, batch: int) -> list[list[Change]]:
    """The workload as coalesced batches: `per_table` changes of a table at a time, tables
    taken in turn (what fetches from many partitions give), `batch` changes per batch."""
    by_table: dict[str, list[Change]] = {}
    for offset, (name, row) in enumerate(workload.rows):
        table = workload.mapping.table(name)
        converted = convert_row(table, row)
        version = version_of(table, converted)
        key = {k: converted[k] for k in table.primary_key}
        source = MessageRef(name, 0, offset, None, None)
        change = Change(name, "upsert", key, converted, encode_version(version), 1, source, version)
        by_table.setdefault(name, []).append(change)
    runs = [[c[i : i + per_table] for i in range(0, len(c), per_table)] for c in by_table.values()]
    order = [c for turn in itertools.zip_longest(*runs) for part in turn if part for c in part]
    return [coalesce_batch(order[i : i + batch]) for i in range(0, len(order), batch)]


@contextmanager
def beside(kind: str, duty: float) -> Iterator[None]:
    """CPU work while the block runs: none, a thread of this process, or another process."""
    stop = threading.Event()
    worker: threading.Thread | None = None
    child: subprocess.Popen[bytes] | None = None
    if kind == "thread":

        def compute() -> None:
            total = 0
            while not stop.is_set():
                started = time.perf_counter()
                while time.perf_counter() - started < CYCLE_S * duty:
                    total += sum(range(1000))
                stop.wait(CYCLE_S * (1 - duty))

        worker = threading.Thread(target=compute, daemon=True)
        worker.start()
    elif kind == "process":
        child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        stop.set()
        if worker is not None:
            worker.join()
        if child is not None:
            child.kill()
            child.wait()


def sink_seconds(
    server_url: str, workload: Workload, batches: list[list[Change]], connections: int
) -> float:
    url = fresh_database(server_url, workload.mapping)
    engine = create_target_engine(url, pool_size=connections + 1)
    sink = MySQLSink(engine, workload.mapping, connections=connections)
    sink.apply([])  # side table and server checks outside the clock
    started = time.perf_counter()
    for batch in batches:
        sink.apply(batch)
    seconds = time.perf_counter() - started
    sink.close()
    engine.dispose()
    drop_database(server_url, url)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds (median shown)")
    parser.add_argument("--duty", type=float, default=0.45, help="the busy thread's share")
    parser.add_argument("--per-table", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    if not 0 < args.duty <= 1:
        sys.exit("--duty must be in (0, 1]")
    server_url = os.environ.get("D1CDC_TARGET_URL")
    if not server_url:
        sys.exit('set D1CDC_TARGET_URL (eval "$(bash ops/services.sh env)")')
    workload = demo_workload(args.rows, Path(tempfile.mkdtemp(prefix="d1cdc-bench-")))
    batches = pipeline_batches(workload, args.per_table, args.batch)
    count = sum(map(len, batches))
    contenders: list[tuple[str, Callable[[], float]]] = [
        ("bare PyMySQL upsert", lambda: bare_insert_all(server_url, workload, 500)),
        ("sink, 1 connection", lambda: sink_seconds(server_url, workload, batches, 1)),
        ("sink, 2 connections", lambda: sink_seconds(server_url, workload, batches, 2)),
    ]
    for kind, label in (
        ("thread", f"a thread busy {args.duty:.0%}"),
        ("process", "a busy process"),
    ):
        contenders.append(
            (f"sink, 2, beside {label}", _beside(kind, args.duty, server_url, workload, batches))
        )
    seconds: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(args.repeat):
        for name, run in contenders:
            seconds[name].append(run())
    bare = statistics.median(seconds["bare PyMySQL upsert"])
    print(f"{count:,} demo rows in {len(batches)} batches; {args.repeat} rounds")
    print(f"{'contender':<40}{'median s':>10}{'rows/s':>10}{'vs bare':>9}  runs")
    for name, times in seconds.items():
        median = statistics.median(times)
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"{name:<40}{median:>10.2f}{count / median:>10,.0f}{bare / median:>8.2f}x  {runs}")


def _beside(
    kind: str, duty: float, server_url: str, workload: Workload, batches: list[list[Change]]
) -> Callable[[], float]:
    def run() -> float:
        with beside(kind, duty):
            return sink_seconds(server_url, workload, batches, 2)

    return run


if __name__ == "__main__":
    main()
