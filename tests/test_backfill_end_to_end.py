"""Source → backfill → Kafka → consume → MariaDB, checked by an independent comparison.

Uses a subset of the demo database (7 tables, parents and children) at a small scale and
one partition per topic, to keep the runtime modest.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from table_compare import differences

from consumers.loop import ConsumeLoop, run_until_caught_up
from producers.backfill import Backfill, BackfillOptions
from producers.emitter import ChangeEmitter
from producers.watermarks import WatermarkStore
from tests.consume_helpers import wait_for
from worker.cli.backfill import run_backfill
from worker.config import Settings
from worker.db import create_target_engine
from worker.demo import generate_demo_db, ground_truth_mapping
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping
from worker.sources import SqliteSource
from worker.topics import ensure_topics

pytestmark = pytest.mark.integration
TABLES = ("user", "team", "team_membership", "limit", "plan", "feature", "tag")


def demo_subset() -> Mapping:
    full = ground_truth_mapping()
    return Mapping({name: full.tables[name] for name in TABLES})


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    path = tmp_path / "demo.sqlite"
    generate_demo_db(path, scale=0.3, seed=7)
    return path


def test_demo_database_backfilled_and_consumed_equals_the_source(
    make_settings: Callable[..., Settings], demo: Path
) -> None:
    """One backfill pass plus consume-until-caught-up reproduces every row of every table."""
    settings = make_settings(source_path=demo, topic_partitions=1)
    mapping = demo_subset()
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    emitted = run_backfill(settings, mapping, mapping.in_level_order(), BackfillOptions())
    assert emitted >= 190  # every row at least once (the lookback re-reads some)
    outcome = run_until_caught_up(settings, mapping, timeout_s=240)
    assert outcome.caught_up and outcome.dead_letters == 0
    assert differences(demo, engine, mapping) == []


class LiveApp:
    """A writer on the `tag` table that commits to SQLite and emits through the shim."""

    def __init__(self, path: Path, emitter: ChangeEmitter, seed: int) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.emitter = emitter
        self.rng = random.Random(seed)
        self.ids = [r[0] for r in self.conn.execute("SELECT id FROM tag")]
        self.serial = 0

    def _row(self, tag_id: str) -> dict[str, object]:
        cursor = self.conn.execute("SELECT * FROM tag WHERE id = ?", (tag_id,))
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))

    def step(self, now: int) -> None:
        self.serial += 1
        action = self.rng.choice(("insert", "update", "update", "delete"))
        if action == "insert" or not self.ids:
            tag_id = f"tag_live{self.serial:05d}"
            self.conn.execute(
                "INSERT INTO tag VALUES (?, ?, ?, 0, ?, 'red')",
                (tag_id, now, now, f"live {self.serial}"),
            )
            self.ids.append(tag_id)
            self.emitter.upsert("tag", self._row(tag_id))
        elif action == "update":
            # Many updates land in the same second: they share the watermark's timestamp.
            tag_id = self.rng.choice(self.ids)
            self.conn.execute(
                "UPDATE tag SET color = ?, updatedAt = ?, "
                "updateCounter = coalesce(updateCounter, 0) + 1 WHERE id = ?",
                (f"c{self.serial}", now, tag_id),
            )
            self.emitter.upsert("tag", self._row(tag_id))
        elif action == "delete":
            tag_id = self.ids.pop(self.rng.randrange(len(self.ids)))
            before = self._row(tag_id)
            self.conn.execute("DELETE FROM tag WHERE id = ?", (tag_id,))
            self.emitter.delete("tag", {"id": tag_id}, before=before)

    def write_behind_the_shim(self, updated_at: int, tag_id: str) -> None:
        """A write the shim never sees (another code path, a manual fix): only the poller
        can find it."""
        self.conn.execute(
            "INSERT INTO tag VALUES (?, ?, ?, 0, ?, 'blue')",
            (tag_id, updated_at, updated_at, f"unseen {tag_id}"),
        )  # not in self.ids: the random deletes must not remove the row under test


def test_live_writes_during_follow_and_consume_converge_to_the_source(
    make_settings: Callable[..., Settings], demo: Path
) -> None:
    """A live writer (inserts, same-second updates, deletes, late commits) runs while the
    poller follows and a consumer applies; afterwards the target equals the source."""
    settings = make_settings(source_path=demo, topic_partitions=1)
    mapping = demo_subset()
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    ensure_topics(admin_client(settings.kafka_bootstrap), settings.topic_prefix, TABLES, 1, 1)
    poller = Backfill(
        SqliteSource(demo),
        ChangeEmitter.from_settings(settings, mapping, origin="backfill"),
        WatermarkStore(engine),
        engine,
        BackfillOptions(chunk=50, lookback_s=60),
    )
    consumer = ConsumeLoop(settings, mapping)
    threads = [
        threading.Thread(target=poller.follow, args=(mapping.in_level_order(), 0.3)),
        threading.Thread(target=consumer.run),
    ]
    for thread in threads:
        thread.start()
    try:
        app_emitter = ChangeEmitter.from_settings(settings, mapping)
        app = LiveApp(demo, app_emitter, seed=3)
        now = int(time.time())
        for _ in range(100):
            app.step(now)  # every write in one second: they share the watermark's timestamp
            app_emitter.poll(0)
        app_emitter.flush()
        seen = poller.cycles
        wait_for(lambda: poller.cycles >= seen + 2, 60, "the watermark to reach `now`")
        # Committed after the poller passed `now`: a late commit stamped 20 s earlier, and a
        # row with the watermark's own timestamp but a key sorting before the watermark's.
        app.write_behind_the_shim(now - 20, "tag_late_commit")
        app.write_behind_the_shim(now, "tag_0000_tie")
        for _ in range(50):
            app.step(now + 1)
            app_emitter.poll(0)
        app_emitter.flush()
        seen = poller.cycles
        wait_for(lambda: poller.cycles >= seen + 2, 60, "two more poller cycles")
    finally:
        poller.stop.set()
        consumer.stop()
        for thread in threads:
            thread.join(timeout=60)
    outcome = run_until_caught_up(settings, mapping, timeout_s=120)
    assert outcome.dead_letters == 0
    assert differences(demo, engine, mapping) == []
