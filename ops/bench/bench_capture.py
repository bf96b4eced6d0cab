"""Capture benchmark: what the triggers cost a write, and how fast the relay ships the log.

    python ops/bench/bench_capture.py [--writes N] [--rounds R]

1. Write overhead: the same single-row INSERT/UPDATE/DELETE workload on the demo `user`
   and `team_membership` tables (autocommit, one write per transaction like a D1 request)
   into two copies of one SQLite file, one without and one with the capture triggers,
   interleaved round by round in this process. Prints µs per write and the ratio.
2. Relay throughput: the log written in step 1 (with triggers) shipped to Kafka by the
   `Relay` (read → produce → every ack → fenced delete), events/s from the first read to
   the empty log. Needs Kafka (`eval "$(bash ops/services.sh env)"`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from producers.capture_sql import install_statements
from producers.changelog import ChangeLog
from producers.emitter import ChangeEmitter
from producers.relay import Relay
from worker.demo import generate_demo_db, ground_truth_mapping
from worker.kafka import admin_client
from worker.schema.mapping import Mapping
from worker.sources import SqliteSource
from worker.topics import ensure_topics

TABLES = ("user", "team", "team_membership", "tag")


def workload(conn: sqlite3.Connection, writes: int, salt: str) -> float:
    """Seconds for `writes` single-row writes (1/3 inserts, updates, deletes of tags)."""
    ids = [r[0] for r in conn.execute("SELECT id FROM tag LIMIT 200")]
    start = time.perf_counter()
    for i in range(writes):
        kind = i % 3
        if kind == 0:
            conn.execute(
                "INSERT INTO tag (id, name, color, createdAt, updatedAt, updateCounter) "
                "VALUES (?, ?, '#abcdef', 1700000000, 1700000000, 0)",
                (f"tag_{salt}_{i}", f"bench {salt} {i}"),
            )
        elif kind == 1:
            conn.execute(
                "UPDATE tag SET name = ?, updateCounter = updateCounter + 1 WHERE id = ?",
                (f"renamed {salt} {i}", ids[i % len(ids)]),
            )
        else:
            conn.execute("DELETE FROM tag WHERE id = ?", (f"tag_{salt}_{i - 2}",))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    full = ground_truth_mapping()
    mapping = Mapping({t: full.tables[t] for t in TABLES})
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    base = work / "base.sqlite"
    generate_demo_db(base, scale=0.2, seed=5)
    plain, captured = work / "plain.sqlite", work / "captured.sqlite"
    shutil.copy(base, plain)
    shutil.copy(base, captured)
    conns = {
        "no triggers": sqlite3.connect(plain, isolation_level=None),
        "capture triggers": sqlite3.connect(captured, isolation_level=None),
    }
    for statement in install_statements(mapping):
        conns["capture triggers"].execute(statement)
    for conn in conns.values():
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    times: dict[str, list[float]] = {name: [] for name in conns}
    for r in range(args.rounds):
        for name, conn in conns.items():
            times[name].append(workload(conn, args.writes, f"r{r}") / args.writes * 1e6)
    print(f"\n## Trigger write overhead ({args.writes} single-row writes x {args.rounds} rounds)\n")
    print("| setup | µs/write (median) | min | max |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |"
        )
    ratio = statistics.median(times["capture triggers"]) / statistics.median(times["no triggers"])
    extra = statistics.median(times["capture triggers"]) - statistics.median(times["no triggers"])
    print(f"\ncapture costs {extra:.1f} µs per write ({ratio:.2f}x the plain write)")

    bootstrap = os.environ.get("D1CDC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    ensure_topics(admin_client(bootstrap), prefix, list(mapping.tables), 3, 1)
    source = SqliteSource(captured, writable=True)
    log = ChangeLog(source)
    depth = log.state().depth
    emitter = ChangeEmitter(bootstrap, prefix, mapping=mapping, origin="capture")
    relay = Relay(log, emitter, mapping, bootstrap=bootstrap, batch_size=1000)
    start = time.perf_counter()
    outcome = relay.run(once=True)
    elapsed = time.perf_counter() - start
    assert outcome.shipped == depth and log.state().depth == 0, "the log did not drain"
    print(f"\n## Relay throughput (SQLite file → Kafka, {depth} entries)\n")
    print("| entries | seconds | events/s |")
    print("|---|---|---|")
    print(f"| {depth} | {elapsed:.2f} | {depth / elapsed:,.0f} |")
    admin_client(bootstrap).delete_topics(
        [f"{prefix}.{t}" for t in mapping.tables] + [f"{prefix}._dlq"]
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
