"""Cut-over and the reverse pipeline end to end (issue 16), real Kafka and MariaDB.

Forward replication brings MariaDB level with the D1 file (capture triggers installed, a
relay shipping the app's last D1 write). Then the cut-over: reverse start marks, and the
app's writes move to MariaDB — a live writer in Drizzle's style (whole-row updates that
bump `updatedAt` and `updateCounter`, inserts, hard deletes). The reverse poller and the
D1 sink run as `d1cdc` processes, each killed with SIGKILL once mid-run and restarted. At
the end an independent comparison (tests/table_compare.py, not d1cdc's own code) finds the
D1 file equal to MariaDB for every table and type of the demo subset; the change log is
empty and the forward topics got no event after the switch: nothing echoed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition
from table_compare import differences

from consumers.loop import run_until_caught_up
from producers.backfill import BackfillOptions
from producers.capture_sql import CHANGES_TABLE, install_statements
from producers.reverse_poller import reverse_watermarks, start_marks
from tests.consume_helpers import wait_for
from tests.test_relay import relay_once
from worker.cli.backfill import run_backfill
from worker.config import Settings
from worker.db import create_target_engine
from worker.demo import generate_demo_db, ground_truth_mapping
from worker.kafka import admin_client, consumer_config
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping
from worker.schema.writer import mapping_to_toml
from worker.sources import SqliteSource
from worker.topics import ensure_topics, reverse_topic_for, topic_for

pytestmark = pytest.mark.integration
D1CDC = [sys.executable, "-c", "from worker.cli.main import run; run()"]
TABLES = ("user", "team", "team_membership", "limit", "plan", "feature", "tag")


def demo_subset() -> Mapping:
    full = ground_truth_mapping()
    return Mapping({name: full.tables[name] for name in TABLES})


class MySQLApp:
    """The app after cut-over, writing to MariaDB the way Drizzle's MySQL driver does: every
    update sets the whole changed row and `$onUpdate` bumps the version columns."""

    def __init__(self, engine: sa.Engine, seed: int, *, keep: set[str]) -> None:
        """`keep`: tag ids never deleted (the test checks them at the end)."""
        self.engine = engine
        self.rng = random.Random(seed)
        self.serial = 0
        with engine.connect() as conn:
            self.users = [r[0] for r in conn.exec_driver_sql("SELECT id FROM `user`")]
            self.teams = [r[0] for r in conn.exec_driver_sql("SELECT id FROM `team`")]
            tags = conn.exec_driver_sql("SELECT id FROM `tag`")
            self.tags = [r[0] for r in tags if r[0] not in keep]
            self.members = [r[0] for r in conn.exec_driver_sql("SELECT id FROM `team_membership`")]

    @staticmethod
    def _now() -> datetime:
        # The demo's version columns are seconds-mode: what D1 can hold of a write.
        return datetime.fromtimestamp(int(time.time()), UTC).replace(tzinfo=None)

    def _bump(self) -> str:
        return "updatedAt = :at, updateCounter = COALESCE(updateCounter, 0) + 1"

    def insert_tag(self, tag_id: str, *, keep: bool = False) -> None:
        now = self._now()
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO `tag` (id, createdAt, updatedAt, updateCounter, name, color) "
                    "VALUES (:id, :at, :at, 0, :name, :color)"
                ),
                {"id": tag_id, "at": now, "name": f"name-{tag_id}", "color": "#00ff00"},
            )
        if not keep:
            self.tags.append(tag_id)

    def step(self) -> None:
        self.serial += 1
        choice, now = self.rng.random(), self._now()
        with self.engine.begin() as conn:
            if choice < 0.35:
                profile = json.dumps({"level": self.serial, "tags": ["a", "ü"], "x": None})
                conn.execute(
                    sa.text(
                        f"UPDATE `user` SET firstName = :name, athleteProfile = :profile, "
                        f"lastActiveAt = :active, {self._bump()} WHERE id = :id"
                    ),
                    {
                        "name": f"First {self.serial}",
                        "profile": profile,
                        "active": datetime.now(UTC).replace(tzinfo=None),
                        "at": now,
                        "id": self.rng.choice(self.users),
                    },
                )
            elif choice < 0.55:
                conn.execute(
                    sa.text(
                        f"UPDATE `team` SET isPersonalTeam = NOT isPersonalTeam, "
                        f"settings = :settings, creditBalance = :credits, {self._bump()} "
                        "WHERE id = :id"
                    ),
                    {
                        "settings": json.dumps({"theme": self.serial % 3, "big": 2**60 + 1}),
                        "credits": 2**62 + self.serial,
                        "at": now,
                        "id": self.rng.choice(self.teams),
                    },
                )
            elif choice < 0.75:
                conn.close()
                self.insert_tag(f"tag-live-{self.serial}")
            elif choice < 0.9 and len(self.tags) > 3:
                tag = self.tags.pop(self.rng.randrange(len(self.tags)))
                conn.execute(sa.text("DELETE FROM `tag` WHERE id = :id"), {"id": tag})
            elif self.members:
                member = self.members.pop(self.rng.randrange(len(self.members)))
                conn.execute(
                    sa.text("DELETE FROM `team_membership` WHERE id = :id"), {"id": member}
                )


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_GROUP_ID": settings.group_id,
        "D1CDC_REVERSE_GROUP_ID": settings.reverse_group_id,
        "D1CDC_MAPPING_PATH": str(settings.mapping_path),
        "D1CDC_SOURCE_PATH": str(settings.source_path),
        "D1CDC_TOPIC_PARTITIONS": "1",
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_FORMAT": "json",
    }


def _start(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*D1CDC, *args], env=_env(settings), stderr=log.open("ab"))


POLLER = ("backfill", "--reverse", "--follow", "--interval", "0.3", "--lookback", "10")
SINK = ("consume", "--into", "d1", "--session-timeout-ms", "6000")


def _ends(settings: Settings) -> dict[str, int]:
    consumer = Consumer(consumer_config(settings.kafka_bootstrap, "ends-reader"))
    try:
        return {
            t: consumer.get_watermark_offsets(
                TopicPartition(topic_for(settings.topic_prefix, t), 0), timeout=10
            )[1]
            for t in TABLES
        }
    finally:
        consumer.close()


def _row(path: Path, table: str, key: str) -> dict[str, Any] | None:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    found = conn.execute(f'SELECT * FROM "{table}" WHERE id = ?', (key,)).fetchone()
    conn.close()
    return None if found is None else dict(found)


def test_after_cut_over_d1_stays_level_with_mysql_through_kill_9_without_echo(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    d1 = tmp_path / "d1.sqlite"
    generate_demo_db(d1, scale=0.3, seed=11)
    mapping = demo_subset()
    (tmp_path / "mapping.toml").write_text(mapping_to_toml(mapping), encoding="utf-8")
    settings = make_settings(source_path=d1, topic_partitions=1)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    app_d1 = sqlite3.connect(d1, isolation_level=None)
    for statement in install_statements(mapping):
        app_d1.execute(statement)

    # -- forward: the migration as it runs before the cut-over ----------------------------
    run_backfill(settings, mapping, mapping.in_level_order(), BackfillOptions())
    # The app's last write to D1, just before the switch: captured, relayed, applied.
    tag_before = app_d1.execute("SELECT id FROM tag ORDER BY id LIMIT 1").fetchone()[0]
    app_d1.execute(
        "UPDATE tag SET color = 'before-switch', updatedAt = updatedAt + 1, "
        "updateCounter = COALESCE(updateCounter, 0) + 1 WHERE id = ?",
        (tag_before,),
    )
    assert relay_once(settings, SqliteSource(d1, writable=True), mapping) == 1
    assert run_until_caught_up(settings, mapping, timeout_s=120).caught_up
    assert differences(d1, engine, mapping) == []
    forward_ends = _ends(settings)

    # -- cut-over: start marks before the switch, then writes go to MySQL ------------------
    store = reverse_watermarks(engine)
    for name, mark in start_marks(engine, mapping.in_level_order()).items():
        store.save(name, mark)
    ensure_topics(
        admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(TABLES), 1, 1,
        topic_of=reverse_topic_for,
    )  # fmt: skip
    writer = MySQLApp(engine, seed=3, keep={tag_before})
    writer.insert_tag("tag-after-switch", keep=True)  # the app's first write to MySQL
    log = tmp_path / "reverse.log"
    poller, sink = _start(settings, log, *POLLER), _start(settings, log, *SINK)
    try:
        for step in range(100):
            writer.step()
            time.sleep(0.02)
            if step == 30:  # SIGKILL mid-run: no flush, no watermark save, no commit
                poller.send_signal(signal.SIGKILL)
                poller.wait(10)
                poller = _start(settings, log, *POLLER)
            if step == 65:
                sink.send_signal(signal.SIGKILL)
                sink.wait(10)
                sink = _start(settings, log, *SINK)
        wait_for(
            lambda: differences(d1, engine, mapping) == [],
            timeout_s=120,
            what="D1 level with MySQL",
            interval_s=1.0,
        )
    finally:
        for process in (poller, sink):
            process.send_signal(signal.SIGTERM)
        for process in (poller, sink):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    assert writer.serial == 100, tail

    # Both the last D1 write before the switch and the first MySQL one after: both sides.
    assert _row(d1, "tag", tag_before)["color"] == "before-switch"  # type: ignore[index]
    assert _row(d1, "tag", "tag-after-switch") is not None
    with engine.connect() as conn:
        color = conn.execute(sa.text("SELECT color FROM tag WHERE id = :id"), {"id": tag_before})
        assert color.scalar() == "before-switch"
    # No echo: the sink's writes were never captured, so nothing went forward again.
    assert app_d1.execute(f'SELECT count(*) FROM "{CHANGES_TABLE}"').fetchone() == (0,)
    assert _ends(settings) == forward_ends
    app_d1.close()
    engine.dispose()
