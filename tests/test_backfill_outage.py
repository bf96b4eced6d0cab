"""`backfill --follow` rides out a MySQL outage like the consumers do (issue 11, defect 5).

Before, the poller exited with an SQLAlchemy traceback when MariaDB restarted, and then
refused to start while the database was down. Here the target is reached through a TCP
proxy the test cuts and restores. That is MySQL "going away" without touching the
server. The real `python -m worker backfill --follow` process must:
- start while the target is down, and wait for it;
- survive the cut and keep polling;
- after the target returns, emit rows written meanwhile;
- print no traceback.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from consumers.loop import run_until_caught_up
from tests.consume_helpers import wait_for
from tests.simple_mapping import versioned_table
from tests.tcp_proxy import TcpProxy
from worker.config import Settings
from worker.db import create_target_engine
from worker.schema.ddl import apply_mapping
from worker.schema.writer import write_mapping

pytestmark = pytest.mark.integration

MAPPING = versioned_table("item")


def add_rows(path: Path, first: int, count: int) -> None:
    now = int(time.time() * 1000)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO item VALUES (?, ?)", [(f"i{i}", now) for i in range(first, first + count)]
        )


def target_ids(url: str) -> set[str]:
    engine = create_target_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.exec_driver_sql("SELECT id FROM item").scalars())
    finally:
        engine.dispose()


def test_follow_waits_for_the_target_and_survives_it_going_away(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source, mapping_file = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute('CREATE TABLE item (id TEXT PRIMARY KEY, "updatedAt" INTEGER NOT NULL)')
    add_rows(source, 0, 5)
    write_mapping(MAPPING, mapping_file)
    settings = make_settings(source_path=source, mapping_path=mapping_file, topic_partitions=1)
    direct = settings.target_url.get_secret_value()
    engine = create_target_engine(direct)
    apply_mapping(engine, MAPPING)
    engine.dispose()
    url = sa.engine.make_url(direct)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    proxy.start()
    proxy.stop()  # the target is down when the poller starts
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("D1CDC_")}
    env |= {
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TARGET_URL": via_proxy,
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_TOPIC_PARTITIONS": "1",
        "D1CDC_SOURCE_PATH": str(source),
        "D1CDC_MAPPING_PATH": str(mapping_file),
        "D1CDC_LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-m", "worker", "backfill", "--follow", "--interval", "0.5"]
    log = tmp_path / "backfill.log"
    poller = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))

    def warned(times: int) -> bool:
        """The poller said `times` times that the target is unavailable (and still runs)."""
        assert poller.poll() is None, log.read_text()[-3000:]
        return log.read_text().count("target unavailable") >= times

    try:
        # Down at start: the poller waits and says so, instead of refusing to start.
        wait_for(lambda: warned(2), 30, "the poller waiting for the target")
        proxy.start()
        consume = lambda: run_until_caught_up(settings, MAPPING, timeout_s=60)  # noqa: E731
        wait_for(
            lambda: consume() and target_ids(direct) == {f"i{i}" for i in range(5)},
            60,
            "first rows",
        )
        before = log.read_text().count("target unavailable")
        proxy.stop()  # MySQL goes away mid-follow
        add_rows(source, 5, 5)
        wait_for(lambda: warned(before + 2), 30, "the poller retrying a failed cycle")
        proxy.start()
        wait_for(
            lambda: consume() and target_ids(direct) == {f"i{i}" for i in range(10)},
            60,
            "rows written during the outage",
        )
    finally:
        poller.terminate()
        poller.wait(60)
        proxy.stop()
    stderr = log.read_text()
    assert poller.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
