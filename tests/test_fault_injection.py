"""Faults under live writes, judged by an independent row-by-row comparison (issue 11).

In one run:
- a live writer changes an SQLite source: inserts, updates and deletes, with natural keys
  deleted and re-inserted, and 10 % of the writes bypassing the shim;
- `d1cdc consume` and `d1cdc backfill --follow` run as real processes;
- each of them is killed with `kill -9` and restarted;
- MariaDB is restarted;
- the broker is down for longer than the group session timeout (10 s on d1cdc's broker,
  `group.consumer.session.timeout.ms` in ops/kafka/server.properties.in).

The run uses a Kafka broker and a MariaDB of its own, so it can stop them. At the end the
writer stops, one final backfill pass runs, and the target must equal the source row for
row (`tests/table_compare.py`, not `d1cdc verify`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from table_compare import differences

from consumers.offsets import group_progress
from producers.emitter import ChangeEmitter
from tests import tls_mariadb
from tests.consume_helpers import wait_for
from tests.private_services import Broker, MariaDB
from worker.db import create_target_engine
from worker.errors import ServiceError
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import mapping_from_dict
from worker.schema.writer import write_mapping
from worker.topics import ensure_topics, topic_for

pytestmark = pytest.mark.integration
PREFIX, GROUP, DATABASE = "fault", "fault-apply", "fault_db"
OUTAGE_S = 15.0  # > the broker's 10 s group session timeout

MAPPING = mapping_from_dict(
    {
        "tables": {
            "item": {
                "primary_key": ["id"],
                "version_columns": ["updatedAt", "updateCounter"],
                "columns": {
                    "id": {"type": "string(20)", "nullable": False},
                    "label": {"type": "text"},
                    "updatedAt": {"type": "timestamp_ms", "nullable": False},
                    "updateCounter": {"type": "bigint", "nullable": False},
                },
            }
        }
    }
)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[Broker, MariaDB]]:
    binary = tls_mariadb.mariadbd()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI: mariadbd is missing (ops/services.sh installs it)")
        pytest.skip("mariadbd is not installed")
    broker, mariadb = Broker(tmp_path / "broker"), MariaDB(tmp_path / "mariadb", binary)
    broker.start()
    mariadb.start(DATABASE)
    try:
        yield broker, mariadb
    finally:
        broker.stop()
        mariadb.stop()


class Writer(threading.Thread):
    """~50 writes/s on 60 keys; a key may be deleted and inserted again."""

    def __init__(self, source: Path, emitter: ChangeEmitter) -> None:
        super().__init__(daemon=True)
        self.source, self.emitter = source, emitter
        self.halt = threading.Event()
        self.writes = 0

    def run(self) -> None:
        rng = random.Random(7)
        conn = sqlite3.connect(self.source, isolation_level=None, timeout=30)
        while not self.halt.is_set():
            key = f"k{rng.randrange(60)}"
            now = int(time.time() * 1000)
            row = conn.execute('SELECT "updateCounter" FROM item WHERE id = ?', (key,)).fetchone()
            bypass = rng.random() < 0.1
            if row is None:
                values = {"id": key, "label": f"v{self.writes}", "updatedAt": now,
                          "updateCounter": 0}  # fmt: skip
                conn.execute("INSERT INTO item VALUES (?, ?, ?, ?)", tuple(values.values()))
                if not bypass:
                    self.emitter.upsert("item", values)
            elif rng.random() < 0.25:
                before = conn.execute("SELECT * FROM item WHERE id = ?", (key,)).fetchone()
                conn.execute("DELETE FROM item WHERE id = ?", (key,))
                if not bypass:
                    names = ("id", "label", "updatedAt", "updateCounter")
                    image = dict(zip(names, before, strict=True))
                    self.emitter.delete("item", {"id": key}, before=image)
            else:
                values = {"id": key, "label": f"v{self.writes}", "updatedAt": now,
                          "updateCounter": row[0] + 1}  # fmt: skip
                conn.execute(
                    'UPDATE item SET label = ?, "updatedAt" = ?, "updateCounter" = ? WHERE id = ?',
                    (values["label"], now, values["updateCounter"], key),
                )
                if not bypass:
                    self.emitter.upsert("item", values)
            self.writes += 1
            with contextlib.suppress(ServiceError):  # undelivered events are spooled
                self.emitter.poll(0)
            time.sleep(0.02)
        conn.close()


def test_live_writes_through_kill_9_a_mariadb_restart_and_a_long_broker_outage(
    services: tuple[Broker, MariaDB], tmp_path: Path
) -> None:
    broker, mariadb = services
    source, mapping_file = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            'CREATE TABLE item (id TEXT PRIMARY KEY, label TEXT, "updatedAt" INTEGER NOT NULL, '
            '"updateCounter" INTEGER NOT NULL)'
        )
    write_mapping(MAPPING, mapping_file)
    url = mariadb.url(DATABASE)
    engine = create_target_engine(url)
    apply_mapping(engine, MAPPING)
    engine.dispose()
    ensure_topics(admin_client(broker.bootstrap), PREFIX, MAPPING.tables, 3, 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("D1CDC_")}
    env |= {
        "D1CDC_KAFKA_BOOTSTRAP": broker.bootstrap,
        "D1CDC_TARGET_URL": url,
        "D1CDC_TOPIC_PREFIX": PREFIX,
        "D1CDC_GROUP_ID": GROUP,
        "D1CDC_SOURCE_PATH": str(source),
        "D1CDC_MAPPING_PATH": str(mapping_file),
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_FORMAT": "json",
        "D1CDC_BACKFILL_INTERVAL_S": "2",
    }

    logs: list[Path] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{args[0]}-{len(logs)}.log"
        logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "worker", *args], env=env,
            stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )  # fmt: skip

    def tail() -> str:
        return "\n".join(f"{p.name}: {p.read_text(errors='replace')[-1500:]}" for p in logs)

    emitter = ChangeEmitter(
        broker.bootstrap, PREFIX, mapping=MAPPING, spool_dir=tmp_path / "spool",
        **{"message.timeout.ms": 5000},
    )  # fmt: skip
    writer = Writer(source, emitter)
    consume, backfill = start("consume"), start("backfill", "--follow")
    writer.start()
    try:
        time.sleep(8)
        consume.send_signal(signal.SIGKILL)  # kill -9 mid-batch
        consume.wait()
        consume = start("consume")
        time.sleep(6)
        backfill.send_signal(signal.SIGKILL)
        backfill.wait()
        backfill = start("backfill", "--follow")
        time.sleep(6)
        mariadb.stop()  # a MariaDB restart
        time.sleep(5)
        mariadb.start()
        time.sleep(6)
        broker.stop()  # longer than the session timeout
        time.sleep(OUTAGE_S)
        broker.start()
        time.sleep(10)
        assert consume.poll() is None and backfill.poll() is None, tail()
    finally:
        writer.halt.set()
        writer.join(30)
    emitter.flush(120)  # the spool, replayed now that the broker is back
    emitter.close()
    backfill.send_signal(signal.SIGTERM)
    assert backfill.wait(60) == 0, tail()

    def caught_up() -> bool:
        topics = [topic_for(PREFIX, t) for t in MAPPING.tables]
        return group_progress(admin_client(broker.bootstrap), GROUP, topics).caught_up()

    wait_for(caught_up, 180, "consumers caught up")
    final = subprocess.run(
        [sys.executable, "-m", "worker", "backfill"], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr[-2000:]
    wait_for(caught_up, 180, "the final pass applied")
    consume.send_signal(signal.SIGTERM)
    assert consume.wait(60) == 0, tail()
    engine = create_target_engine(url)
    try:
        assert differences(source, engine, MAPPING) == []
    finally:
        engine.dispose()
    assert writer.writes > 2000  # ~50/s for the ~60 s of faults: the app never stalled
