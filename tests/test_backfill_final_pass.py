"""One final backfill pass converges even while consumers lag (issue 11, defect 8).

The key-set delete diff compares the source with the target *as applied so far*. Before, a
final `backfill` pass run while consumers lagged left extra rows: a row inserted through
the shim (its event still in flight) and then deleted by a write that bypassed the shim
was absent from the target's keys at diff time, so no delete was emitted, and the insert
landed afterwards. Now a one-shot pass waits for the apply group to have applied the
table's events before it diffs (or skips the diff, saying so).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from table_compare import differences

from consumers.loop import run_until_caught_up
from producers.backfill import BackfillOptions
from producers.emitter import ChangeEmitter
from tests.simple_mapping import versioned_table
from worker.cli.backfill import run_backfill
from worker.config import Settings
from worker.db import create_target_engine
from worker.schema.ddl import apply_mapping
from worker.topics import ensure_table_topics

pytestmark = pytest.mark.integration

MAPPING = versioned_table("item")


def test_a_single_final_pass_with_lagging_consumers_leaves_no_extra_row(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source = tmp_path / "d1.sqlite"
    now = int(time.time() * 1000)
    with sqlite3.connect(source) as conn:
        conn.execute('CREATE TABLE item (id TEXT PRIMARY KEY, "updatedAt" INTEGER NOT NULL)')
        conn.executemany("INSERT INTO item VALUES (?, ?)", [(f"i{i}", now) for i in range(20)])
    settings = make_settings(source_path=source, topic_partitions=1)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, MAPPING)
    ensure_table_topics(settings, MAPPING.tables)
    tables = list(MAPPING.tables.values())
    run_backfill(settings, MAPPING, tables, BackfillOptions())
    run_until_caught_up(settings, MAPPING, timeout_s=60)

    # The app inserts five rows through the shim; consumers are down, so they are in flight.
    emitter = ChangeEmitter(settings.kafka_bootstrap, settings.topic_prefix, mapping=MAPPING)
    with sqlite3.connect(source) as conn:
        for i in range(20, 25):
            conn.execute("INSERT INTO item VALUES (?, ?)", (f"i{i}", now + 1))
            emitter.upsert("item", {"id": f"i{i}", "updatedAt": now + 1})
        conn.execute("DELETE FROM item WHERE id = 'i20'")  # bypasses the shim: no event
    emitter.flush()

    # The final pass starts while consumers lag; they come back three seconds later.
    consumer = threading.Thread(
        target=lambda: (time.sleep(3), run_until_caught_up(settings, MAPPING, timeout_s=90))
    )
    consumer.start()
    run_backfill(settings, MAPPING, tables, BackfillOptions(settle_timeout_s=60))
    consumer.join()
    run_until_caught_up(settings, MAPPING, timeout_s=60)  # the deletes the pass emitted
    try:
        assert differences(source, engine, MAPPING) == []
    finally:
        emitter.close()
        engine.dispose()
