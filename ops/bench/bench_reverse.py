"""Reverse lag after cut-over: a MySQL write → its row in D1, at a steady write rate.

    eval "$(bash ops/services.sh env)"
    python ops/bench/bench_reverse.py [--rate 100] [--seconds 15] [--interval 0.2]
                                      [--deletes-every 60]

The app's writes (after cut-over) go to MariaDB at `--rate` writes/s for `--seconds`: 70 %
inserts, 30 % updates that bump `updatedAt` (Drizzle's `$onUpdate`). A watcher in this
process notes when each write's version shows up in the D1 side. Three ways, same run,
same writer, same poll interval:

- baseline — the floor of any polling design: one thread polls MySQL every `--interval`
  seconds and writes the changed rows straight into the SQLite file (no Kafka, no
  guards, no processes);
- file sink — `d1cdc backfill --reverse --follow` and `d1cdc consume --into d1` as the
  user runs them, D1 being an SQLite file (capture triggers installed: the no-echo
  marker is on the path);
- HTTP sink — the same two processes talking to D1's HTTP API (tests/d1_api_server.py
  serving a copy of the file; the poller and the sink each get their own server so
  their requests are counted apart), each within its own request budget
  (`D1CDC_D1_REQUESTS_PER_5MIN`: `--sink-budget`, `--poller-budget`, together under
  Cloudflare's 1,200 per 5 minutes), so the paced regime shows once the burst is spent.

Prints p50/p99/max lag per way, its ratio to the baseline, and for the HTTP way the D1 API
requests per 1,000 applied writes and per second (Cloudflare allows 1,200 per 5 minutes,
4/s, per account).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench_common import wait_for_group  # noqa: E402

from producers.capture_sql import install_statements  # noqa: E402
from producers.reverse_poller import reverse_watermarks, start_marks  # noqa: E402
from tests.d1_api_server import D1ApiServer, serve_d1_api  # noqa: E402
from tests.simple_mapping import versioned_table  # noqa: E402
from worker.db import create_database, create_target_engine  # noqa: E402
from worker.kafka import admin_client  # noqa: E402
from worker.schema.ddl import apply_mapping  # noqa: E402
from worker.schema.writer import mapping_to_toml  # noqa: E402
from worker.topics import ensure_topics, reverse_topic_for  # noqa: E402

MAPPING = versioned_table("item", id_length=40, name="text")
TABLE = MAPPING.table("item")
D1CDC = [sys.executable, "-c", "from worker.cli.main import run; run()"]
D1_DDL = 'CREATE TABLE "item" (id TEXT PRIMARY KEY, name TEXT, "updatedAt" INTEGER NOT NULL)'


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


class Writer:
    """The app after cut-over: `rate` single-row writes per second into MySQL."""

    def __init__(self, engine: sa.Engine, rate: float, seed: int) -> None:
        self.engine, self.rate, self.rng = engine, rate, random.Random(seed)
        self.log: list[tuple[str, int, float]] = []  # (id, version ms, commit time), appended
        self.ids: list[str] = []
        self.count = 0
        self._last_ms = 0

    def _version(self) -> int:
        self._last_ms = max(self._last_ms + 1, time.time_ns() // 1_000_000)
        return self._last_ms

    def run(self, seconds: float) -> None:
        statement = sa.text(
            "INSERT INTO `item` (id, name, updatedAt) VALUES (:id, :name, :at) "
            "ON DUPLICATE KEY UPDATE name = VALUES(name), updatedAt = VALUES(updatedAt)"
        )
        start = time.monotonic()
        n = 0
        with self.engine.connect() as conn:
            while time.monotonic() - start < seconds:
                due = start + n / self.rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                if self.ids and self.rng.random() < 0.3:
                    item = self.rng.choice(self.ids)
                else:
                    item = f"i{uuid.uuid4().hex}"
                    self.ids.append(item)
                version = self._version()
                conn.execute(statement, {"id": item, "name": f"n{n}", "at": _utc(version)})
                conn.commit()
                self.log.append((item, version, time.monotonic()))
                n += 1
        self.count += n


class Watcher:
    """Notes, for each write, when D1 first holds its version (or a later one)."""

    def __init__(self, path: Path, writer: Writer) -> None:
        self.path, self.writer = path, writer
        self.lags: list[float] = []
        self._waiting: dict[str, tuple[int, float]] = {}  # id → newest (version, commit time)
        self._read = 0  # entries of the writer's log taken so far
        self.stop = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        while not self.stop.is_set():
            self.check(conn)
            time.sleep(0.005)
        self.check(conn)
        conn.close()

    def check(self, conn: sqlite3.Connection) -> None:
        """A write superseded before D1 showed it counts from its successor's commit."""
        log = self.writer.log
        end = len(log)  # the writer only appends: entries below `end` are final
        for item, version, committed in log[self._read : end]:
            self._waiting[item] = (version, committed)
        self._read = end
        now = time.monotonic()
        held = dict(conn.execute('SELECT id, "updatedAt" FROM item').fetchall())
        for item, (version, committed) in list(self._waiting.items()):
            if held.get(item, -1) >= version:
                del self._waiting[item]
                self.lags.append(now - committed)

    def pending(self) -> int:
        return len(self._waiting) + len(self.writer.log) - self._read


def baseline_copier(engine: sa.Engine, path: Path, interval: float, stop: threading.Event) -> None:
    """Poll MySQL and copy changed rows straight into SQLite: the design's lower bound."""
    conn = sqlite3.connect(path, isolation_level=None)
    mark = _utc(0)
    query = sa.text("SELECT id, name, updatedAt FROM `item` WHERE updatedAt >= :mark")
    with engine.connect() as mysql:
        while not stop.is_set():
            rows = mysql.execute(query, {"mark": mark}).all()
            mysql.commit()
            if rows:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO item VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    'name = excluded.name, "updatedAt" = excluded."updatedAt"',
                    [(r.id, r.name, _ms(r.updatedAt)) for r in rows],
                )
                conn.execute("COMMIT")
                mark = max(r.updatedAt for r in rows)
            stop.wait(interval)
    conn.close()


def _ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


class Setup:
    """A fresh MySQL database, D1 file, topics and reverse start marks for one way."""

    def __init__(self, work: Path, name: str, server_url: str, bootstrap: str) -> None:
        self.name = f"bench_rev_{name}_{uuid.uuid4().hex[:6]}"
        create_database(server_url, self.name)
        self.url = sa.engine.make_url(server_url).set(database=self.name)
        self.engine = create_target_engine(self.url.render_as_string(hide_password=False))
        apply_mapping(self.engine, MAPPING)
        self.d1 = work / f"{name}.sqlite"
        conn = sqlite3.connect(self.d1, isolation_level=None)
        conn.execute(D1_DDL)
        for sql in install_statements(MAPPING):
            conn.execute(sql)
        conn.close()
        self.mapping_path = work / "mapping.toml"
        self.mapping_path.write_text(mapping_to_toml(MAPPING), encoding="utf-8")
        self.bootstrap = bootstrap
        self.prefix = self.name
        admin = admin_client(bootstrap)
        ensure_topics(admin, self.prefix, ["item"], 1, 1, topic_of=reverse_topic_for)
        store = reverse_watermarks(self.engine)
        for table, mark in start_marks(self.engine, [TABLE]).items():
            store.save(table, mark)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "D1CDC_KAFKA_BOOTSTRAP": self.bootstrap,
            "D1CDC_TARGET_URL": self.url.render_as_string(hide_password=False),
            "D1CDC_TOPIC_PREFIX": self.prefix,
            "D1CDC_REVERSE_GROUP_ID": f"{self.prefix}-reverse",
            "D1CDC_GROUP_ID": f"{self.prefix}-apply",
            "D1CDC_MAPPING_PATH": str(self.mapping_path),
            "D1CDC_SOURCE_PATH": str(self.d1),
            "D1CDC_METRICS_PORT": "0",
            "D1CDC_LOG_FORMAT": "json",
            "D1CDC_LOG_LEVEL": "warning",
            **extra,
        }


def _http_env(server: D1ApiServer, budget: int) -> dict[str, str]:
    return {
        "D1CDC_D1_REQUESTS_PER_5MIN": str(budget),
        "D1CDC_SOURCE": "d1http",
        "D1CDC_D1_API_BASE": server.base_url,
        "D1CDC_D1_ACCOUNT_ID": server.account,
        "D1CDC_D1_DATABASE_ID": server.database,
        "D1CDC_D1_API_TOKEN": server.token,
    }


def measure(
    writer: Writer, watcher: Watcher, seconds: float, start: Callable[[], Callable[[], None]]
) -> tuple[list[float], float]:
    """Start the replication, write for `seconds`, wait for the last write to land."""
    stop_replication = start()
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    began = time.monotonic()
    writer.run(seconds)
    deadline = time.monotonic() + 60
    while watcher.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    elapsed = time.monotonic() - began
    watcher.stop.set()
    thread.join()
    stop_replication()
    if watcher.pending():
        raise SystemExit(f"{watcher.pending()} writes never reached D1 within 60 s")
    return watcher.lags, elapsed


def processes(
    setup: Setup,
    interval: float,
    deletes_every: float,
    poller_env: dict[str, str],
    sink_env: dict[str, str],
    log: Path,
) -> Callable[[], Callable[[], None]]:
    def start() -> Callable[[], None]:
        poll = ("backfill", "--reverse", "--follow", "--interval", str(interval), "--lookback", "2",
                "--deletes-every", str(deletes_every))  # fmt: skip
        with log.open("ab") as out:
            started = [
                subprocess.Popen([*D1CDC, *poll], env=setup.env(**poller_env), stderr=out),
                subprocess.Popen(
                    [*D1CDC, "consume", "--into", "d1"], env=setup.env(**sink_env), stderr=out
                ),
            ]
        # The sink holds its partition before the first write (a group's first join waits
        # out the broker's initial rebalance delay: seconds that are not replication lag).
        wait_for_group(admin_client(setup.bootstrap), f"{setup.prefix}-reverse", 1, 1)

        def stop() -> None:
            for process in started:
                process.send_signal(signal.SIGTERM)
            for process in started:
                process.wait(30)

        return stop

    return start


def _row(label: str, lags: list[float], base: float | None) -> str:
    ms = sorted(x * 1000 for x in lags)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    ratio = f"{p50 / base:5.2f}x" if base else "   1x"
    return f"{label:<14} {len(ms):>7} {p50:>9.0f} {p99:>9.0f} {ms[-1]:>9.0f} {ratio:>8}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="Writes per second.")
    parser.add_argument("--seconds", type=float, default=15.0, help="Seconds of writes per way.")
    parser.add_argument("--interval", type=float, default=0.2, help="Poll interval, s.")
    parser.add_argument(
        "--deletes-every", type=float, default=60.0, help="The poller's delete-diff period, s."
    )
    parser.add_argument(
        "--sink-budget", type=int, default=600, help="HTTP way: the sink's requests per 5 min."
    )
    parser.add_argument(
        "--poller-budget", type=int, default=300, help="HTTP way: the poller's requests per 5 min."
    )
    args = parser.parse_args()
    server_url = os.environ.get("D1CDC_TARGET_URL")
    bootstrap = os.environ.get("D1CDC_KAFKA_BOOTSTRAP")
    if not server_url or not bootstrap:
        raise SystemExit('needs the services: eval "$(bash ops/services.sh env)"')
    work = Path(tempfile.mkdtemp(prefix="bench-reverse-"))
    log = work / "processes.log"
    results: dict[str, list[float]] = {}
    http_requests: dict[str, int] = {}
    http_seconds = 0.0
    applied = 0

    base = Setup(work, "baseline", server_url, bootstrap)
    writer = Writer(base.engine, args.rate, seed=1)
    stop = threading.Event()

    def start_copier() -> Callable[[], None]:
        thread = threading.Thread(
            target=baseline_copier, args=(base.engine, base.d1, args.interval, stop)
        )
        thread.start()
        return lambda: (stop.set(), thread.join())  # type: ignore[func-returns-value]

    results["baseline"], _ = measure(writer, Watcher(base.d1, writer), args.seconds, start_copier)

    file = Setup(work, "file", server_url, bootstrap)
    writer = Writer(file.engine, args.rate, seed=1)
    start = processes(file, args.interval, args.deletes_every, {}, {}, log)
    results["file sink"], _ = measure(writer, Watcher(file.d1, writer), args.seconds, start)

    http = Setup(work, "http", server_url, bootstrap)
    writer = Writer(http.engine, args.rate, seed=1)
    with ExitStack() as stack:
        for_poller = stack.enter_context(serve_d1_api(http.d1))
        for_sink = stack.enter_context(serve_d1_api(http.d1))
        start = processes(
            http,
            args.interval,
            args.deletes_every,
            _http_env(for_poller, args.poller_budget),
            _http_env(for_sink, args.sink_budget),
            log,
        )
        results["HTTP sink"], http_seconds = measure(
            writer, Watcher(http.d1, writer), args.seconds, start
        )
        http_requests = {"poller": for_poller.requests, "sink": for_sink.requests}
        applied = writer.count

    print(
        f"\nreverse lag, MySQL commit → row in D1, {args.rate:.0f} writes/s for "
        f"{args.seconds:.0f} s, poll interval {args.interval} s"
    )
    print(f"{'way':<14} {'writes':>7} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'p50/base':>8}")
    base_p50 = statistics.median(x * 1000 for x in results["baseline"])
    for label, lags in results.items():
        print(_row(label, lags, None if label == "baseline" else base_p50))
    total = sum(http_requests.values())
    print(
        f"\nD1 API requests (HTTP way): poller {http_requests['poller']}, sink "
        f"{http_requests['sink']}; {total * 1000 / max(1, applied):.0f} per 1,000 applied "
        f"writes, {total / max(http_seconds, 1e-9):.1f}/s (budgets: sink {args.sink_budget}, "
        f"poller {args.poller_budget} per 5 min; Cloudflare: 1,200 per 5 min per account)"
    )
    print(f"processes' log: {log}")
    for setup in (base, file, http):
        with setup.engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE `{setup.name}`"))
        setup.engine.dispose()


if __name__ == "__main__":
    main()
