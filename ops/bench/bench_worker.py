"""The user's stack under load: the Drizzle Worker in workerd, captured and replicated.

    eval "$(bash ops/services.sh env)"; bash ops/worker_app.sh setup
    python ops/bench/bench_worker.py [--rate 300] [--seconds 8] [--rounds 2] [--lag-seconds 20]

1. What capture costs the Worker: the same load (`load.mjs`, every kind of write, same
   seed) against two apps in this run, one migrated without and one with the capture
   triggers, interleaved round by round. Prints requests/s and p50/p99 latency.
2. End-to-end lag at a steady 200 writes/s, from the write's commit to the row in MySQL,
   with `d1cdc relay` and `d1cdc consume` running as the user runs them (default relay
   poll interval). Two sources, same run:
   - the D1 HTTP API (the harness serves it from workerd's own D1), lag measured from the
     Worker's response;
   - an SQLite file written by this process, lag measured from the commit.
   p50/p99 of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.simple_mapping import versioned_table  # noqa: E402
from tests.worker_app import (  # noqa: E402
    APP,
    CAPTURE_MIGRATION,
    MAPPING,
    MIGRATIONS,
    harness,
    run_load,
)
from worker.db import create_database, create_target_engine  # noqa: E402
from worker.kafka import admin_client  # noqa: E402
from worker.schema.ddl import apply_mapping  # noqa: E402
from worker.schema.mapping import load_mapping  # noqa: E402
from worker.schema.writer import write_mapping  # noqa: E402
from worker.topics import ensure_topics  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drizzle_only(tmp: Path) -> Path:
    folder = tmp / "migrations-no-capture"
    folder.mkdir()
    for path in MIGRATIONS.glob("*.sql"):
        if path != CAPTURE_MIGRATION:
            shutil.copy(path, folder / path.name)
    return folder


def overhead(tmp: Path, rate: int, seconds: float, rounds: int) -> None:
    plain = drizzle_only(tmp)
    results: dict[str, list[dict[str, Any]]] = {"without triggers": [], "with triggers": []}
    for r in range(rounds):
        for label, folder in (("without triggers", plain), ("with triggers", MIGRATIONS)):
            with harness(tmp / f"persist-{r}-{label.replace(' ', '-')}", folder) as app:
                run_load(app.url, rate=50, seconds=2, seed=100 + r)  # warm workerd up
                results[label].append(run_load(app.url, rate=rate, seconds=seconds, seed=r))
    print(f"\n1. Worker requests under load ({rounds} rounds x {seconds:g} s, offered {rate}/s)")
    print(f"{'':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    summary = {}
    for label, runs in results.items():
        rps = statistics.median(x["rate_achieved"] for x in runs)
        p50 = statistics.median(x["p50_ms"] for x in runs)
        p99 = statistics.median(x["p99_ms"] for x in runs)
        summary[label] = (rps, p50, p99)
        errors = sum(x["errors"] for x in runs)
        print(f"{label:18} {rps:8.1f} {p50:8.2f} {p99:8.2f} {errors:7d}")
    (r0, p50_0, p99_0), (r1, p50_1, p99_1) = summary.values()
    print(f"{'ratio with/without':18} {r1 / r0:8.2f}x {p50_1 / p50_0:7.2f}x {p99_1 / p99_0:7.2f}x")


@contextmanager
def workers(env: dict[str, str]) -> Iterator[None]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "worker", name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("relay", "consume")
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def base_env(target_url: str, prefix: str, source: Path, mapping: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("D1CDC_")}
    return env | {
        "D1CDC_KAFKA_BOOTSTRAP": os.environ["D1CDC_KAFKA_BOOTSTRAP"],
        "D1CDC_TARGET_URL": target_url,
        "D1CDC_TOPIC_PREFIX": prefix,
        "D1CDC_GROUP_ID": f"{prefix}-apply",
        "D1CDC_SOURCE_PATH": str(source),
        "D1CDC_MAPPING_PATH": str(mapping),
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_FORMAT": "json",
    }


def fresh_target(mapping_path: Path) -> tuple[str, str]:
    """A new database with the mapping's tables, and topics for a new prefix."""
    server = os.environ["D1CDC_TARGET_URL"]
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    create_database(server, prefix)
    url = sa.engine.make_url(server).set(database=prefix).render_as_string(hide_password=False)
    mapping = load_mapping(mapping_path)
    engine = create_target_engine(url)
    apply_mapping(engine, mapping)
    engine.dispose()
    ensure_topics(admin_client(os.environ["D1CDC_KAFKA_BOOTSTRAP"]), prefix, mapping.tables, 3, 1)
    return url, prefix


def measure_lag(
    write: Callable[[int], str], table: str, column: str, url: str, rate: int, seconds: float
) -> list[float]:
    """Call `write(i)` at `rate`/s (it returns the row's marker once committed) and time
    each marker's arrival in MySQL; seconds of lag per write."""
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()
    engine = create_target_engine(url)

    def poll() -> None:
        query = sa.text(f"SELECT `{column}` FROM `{table}` WHERE `{column}` LIKE 'lag-%'")
        with engine.connect() as conn:
            while not done.is_set() or len(seen) < len(written):
                now = time.time()
                for (marker,) in conn.execute(query):
                    seen.setdefault(marker, now)
                conn.commit()
                time.sleep(0.005)
                if done.is_set() and time.time() > deadline:
                    return

    deadline = float("inf")
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        marker = write(i)
        written[marker] = time.time()
    deadline = time.time() + 60
    done.set()
    poller.join()
    engine.dispose()
    missing = set(written) - set(seen)
    if missing:
        raise SystemExit(f"{len(missing)} writes never reached MySQL")
    return [seen[m] - written[m] for m in written]


def lag_worker(tmp: Path, rate: int, seconds: float) -> list[float]:
    url, prefix = fresh_target(MAPPING)
    with harness(tmp / "persist-lag", MIGRATIONS) as app:
        env = base_env(url, prefix, app.d1_file, MAPPING) | app.d1_env()
        client = httpx.Client(timeout=30)

        def write(i: int) -> str:
            marker = f"lag-{i}@example.com"
            response = client.post(app.url + "/users", json={"firstName": "Lag", "email": marker})
            response.raise_for_status()
            return marker

        with workers(env):
            return measure_lag(write, "user", "email", url, rate, seconds)


FILE_MAPPING = versioned_table("note", id_length=40, body="text")


def lag_file(tmp: Path, rate: int, seconds: float) -> list[float]:
    source, mapping = tmp / "file.sqlite", tmp / "file-mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute('CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, "updatedAt" INTEGER)')
    write_mapping(FILE_MAPPING, mapping)
    url, prefix = fresh_target(mapping)
    env = base_env(url, prefix, source, mapping)
    subprocess.run(
        [sys.executable, "-m", "worker", "capture", "install"],
        env=env,
        check=True,
        capture_output=True,
    )
    conn = sqlite3.connect(source, isolation_level=None, timeout=30)

    def write(i: int) -> str:
        marker = f"lag-{i}"
        conn.execute("INSERT INTO note VALUES (?, 'x', ?)", (marker, int(time.time() * 1000)))
        return marker

    with workers(env):
        try:
            return measure_lag(write, "note", "id", url, rate, seconds)
        finally:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=300, help="Offered requests/s for part 1.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Seconds per part-1 round.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lag-rate", type=int, default=200, help="Writes/s for part 2.")
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    args = parser.parse_args()
    for name in ("D1CDC_KAFKA_BOOTSTRAP", "D1CDC_TARGET_URL"):
        if name not in os.environ:
            raise SystemExit(f'{name} is not set: eval "$(bash ops/services.sh env)" first')
    if not (APP / "node_modules").is_dir():
        raise SystemExit("the Worker app is not installed: bash ops/worker_app.sh setup")
    with tempfile.TemporaryDirectory() as tmp:
        overhead(Path(tmp), args.rate, args.seconds, args.rounds)
        worker = lag_worker(Path(tmp), args.lag_rate, args.lag_seconds)
        file = lag_file(Path(tmp), args.lag_rate, args.lag_seconds)
    print(
        f"\n2. End-to-end lag, write committed -> row in MySQL, {args.lag_rate} writes/s "
        f"for {args.lag_seconds:g} s (relay poll interval: the default)"
    )
    print(f"{'source':34} {'writes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, lags in (("D1 HTTP API (Worker, workerd D1)", worker), ("SQLite file", file)):
        ms = [x * 1000 for x in lags]
        print(
            f"{label:34} {len(ms):7d} {percentile(ms, 0.5):8.0f} {percentile(ms, 0.99):8.0f} "
            f"{max(ms):8.0f}"
        )
    print(json.dumps({"worker_lag_p99_ms": percentile(worker, 0.99) * 1000,
                      "file_lag_p99_ms": percentile(file, 0.99) * 1000}))  # fmt: skip


if __name__ == "__main__":
    main()
