"""Rows as large as D1 allows (2 MB) replicate end to end (issue 11, defect 6).

Before: topics had Kafka's 1 MB default and producers librdkafka's, so a 1.5 MB row raised
MSG_SIZE_TOO_LARGE to the app after its commit and `backfill` died on it every run. Now a
2 MB text value and a 2 MB blob (2.7 MB as base64) go through the app's emitter and through
backfill, and an event too big even for d1cdc's 8 MiB limit is a named error for an app and
a dead letter (not a stop) for backfill.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from table_compare import differences

from consumers.dlq import read_dead_letters
from consumers.loop import run_until_caught_up
from producers.backfill import BackfillOptions
from producers.emitter import ChangeEmitter
from tests.simple_mapping import versioned_table
from worker.cli.backfill import run_backfill
from worker.config import Settings
from worker.db import create_target_engine
from worker.errors import EventTooLargeError
from worker.kafka import MAX_EVENT_BYTES
from worker.schema.ddl import apply_mapping

pytestmark = pytest.mark.integration
TWO_MB = 2 * 1000 * 1000

MAPPING = versioned_table("note", body="text", file="blob")


def make_source(path: Path, rows: list[tuple[str, str, bytes]]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            'CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, file BLOB, "updatedAt" INTEGER)'
        )
        conn.executemany(
            "INSERT INTO note VALUES (?, ?, ?, 1760000000000)", [(i, b, f) for i, b, f in rows]
        )


def big_rows(n: int, size: int) -> list[tuple[str, str, bytes]]:
    return [
        (f"n{i}", ("é" * (size // 2))[: size // 2], bytes((i + j) % 256 for j in range(size)))
        for i in range(n)
    ]


def test_two_mb_rows_through_the_app_emitter_and_backfill(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source = tmp_path / "d1.sqlite"
    rows = big_rows(3, TWO_MB)  # body: 1M of 'é' = 2 MB of UTF-8; file: 2 MB of bytes
    make_source(source, rows)
    settings = make_settings(source_path=source, topic_partitions=1)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, MAPPING)
    try:
        run_backfill(settings, MAPPING, MAPPING.in_level_order(), BackfillOptions())
        emitter = ChangeEmitter(settings.kafka_bootstrap, settings.topic_prefix, mapping=MAPPING)
        row = {"id": "app1", "body": "ü" * (TWO_MB // 2), "file": b"\x00" * TWO_MB}
        emitter.upsert("note", {**row, "updatedAt": 1_760_000_000_001})
        emitter.flush()
        with sqlite3.connect(source) as conn:
            conn.execute("INSERT INTO note VALUES (?, ?, ?, 1760000000001)", tuple(row.values()))
        outcome = run_until_caught_up(settings, MAPPING, timeout_s=120)
        assert outcome.caught_up and outcome.dead_letters == 0
        assert differences(source, engine, MAPPING) == []
    finally:
        engine.dispose()


def test_an_event_over_the_limit_is_a_named_error_for_an_app_and_a_dead_letter_for_backfill(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source = tmp_path / "d1.sqlite"
    huge = ("h0", "x" * (MAX_EVENT_BYTES + 512 * 1024), b"")  # over the DLQ too: truncated
    make_source(source, [huge, *big_rows(2, 1000)])
    settings = make_settings(source_path=source, topic_partitions=1)
    emitter = ChangeEmitter(settings.kafka_bootstrap, settings.topic_prefix, mapping=MAPPING)
    with pytest.raises(EventTooLargeError, match=r"^note key=.*h0.*: the event is \d+ bytes"):
        emitter.upsert("note", {"id": "h0", "body": huge[1], "file": None, "updatedAt": 1})
    emitter.flush()

    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, MAPPING)
    try:
        emitted = run_backfill(settings, MAPPING, MAPPING.in_level_order(), BackfillOptions())
        assert emitted >= 3  # the huge row counts as read; the lookback re-reads some
        run_until_caught_up(settings, MAPPING, timeout_s=120)
        assert differences(source, engine, MAPPING) == ["note ('h0',): missing in target"]
    finally:
        engine.dispose()
    letters = read_dead_letters(settings.kafka_bootstrap, f"{settings.topic_prefix}._dlq")
    [letter] = letters
    assert letter.topic == f"{settings.topic_prefix}.note"
    assert "over the" in letter.reason and letter.truncated
    assert int(letter.headers["d1cdc.original_size"]) > MAX_EVENT_BYTES
