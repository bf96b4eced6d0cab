"""The reverse poller (MySQL → reverse topics, issue 16) against a real broker and MariaDB."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from topic_reader import read_topic

from producers.backfill import BackfillOptions
from producers.emitter import ChangeEmitter
from producers.keyset import MYSQL, Watermark, next_page
from producers.reverse_poller import ReversePoller, reverse_watermarks, start_marks
from producers.watermarks import WatermarkStore
from tests.consume_helpers import BASE_MS, MAPPING, prepare_target
from worker.config import Settings
from worker.kafka import admin_client
from worker.sources import SqliteSource
from worker.topics import ensure_topics, reverse_topic_for

pytestmark = pytest.mark.integration
USER = MAPPING.table("user")


def test_mysql_pages_quote_with_backticks_and_bind_with_percent_s() -> None:
    page = next_page(USER, Watermark("incremental", pk=("a",), version=1), 10, dialect=MYSQL)
    assert page.sql == (
        "SELECT * FROM `user` WHERE (`updatedAt`, `id`) > (%s, %s) "
        "ORDER BY `updatedAt`, `id` LIMIT %s"
    )
    assert page.params == (1, "a", 10)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)  # DATETIME(3): UTC


def _app_write(engine: sa.Engine, uid: str, version: int, *, active: bool = True) -> None:
    """A write in the app's style after cut-over: the whole row, `updatedAt` bumped."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO `user` (id, email, name, active, updatedAt) "
                "VALUES (:id, :email, :name, :active, :at) ON DUPLICATE KEY UPDATE "
                "name = VALUES(name), active = VALUES(active), updatedAt = VALUES(updatedAt)"
            ),
            {
                "id": uid,
                "email": f"{uid}@example.com",
                "name": f"{uid}-v{version}",
                "active": active,
                "at": _at(BASE_MS + version),
            },
        )


def _replica(path: Path, ids: list[str]) -> SqliteSource:
    """The D1 side as the forward pipeline left it: the same users (for the delete diff)."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE user (id TEXT PRIMARY KEY, email TEXT, name TEXT, active INTEGER, "
        "updatedAt INTEGER NOT NULL)"
    )
    conn.execute("CREATE TABLE tag (id TEXT PRIMARY KEY, label TEXT)")
    conn.executemany(
        "INSERT INTO user VALUES (?, ?, ?, 1, ?)",
        [(i, f"{i}@example.com", f"{i}-v1", BASE_MS + 1) for i in ids],
    )
    conn.commit()
    conn.close()
    return SqliteSource(path)


def _events(settings: Settings, table: str = "user") -> list[dict[str, Any]]:
    topic = reverse_topic_for(settings.topic_prefix, table)
    return [json.loads(v) for _, v in read_topic(settings.kafka_bootstrap, topic) if v]


def test_after_cut_over_only_mysql_changes_ship_in_source_form_and_deletes_are_found(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    engine = prepare_target(settings.target_url.get_secret_value())
    ensure_topics(
        admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(MAPPING.tables),
        2, 1, topic_of=reverse_topic_for,
    )  # fmt: skip
    ids = [f"u{i}" for i in range(6)]
    for n, uid in enumerate(ids, start=1):
        _app_write(engine, uid, n)  # what forward replication brought over
    replica = _replica(tmp_path / "d1.sqlite", ids)
    store = reverse_watermarks(engine)
    for name, mark in start_marks(engine, [USER]).items():  # what `cutover start` saves
        store.save(name, mark)
    assert WatermarkStore(engine).all() == {}  # the forward poller's view stays apart

    _app_write(engine, "u2", 10, active=False)  # after the switch: an update, an insert,
    _app_write(engine, "new", 11)
    with engine.begin() as conn:  # and a hard delete
        conn.execute(sa.text("DELETE FROM `user` WHERE id = 'u4'"))
    emitter = ChangeEmitter.from_settings(
        settings, MAPPING, origin="reverse", topic_of=reverse_topic_for
    )
    poller = ReversePoller(engine, replica, emitter, BackfillOptions(chunk=2, lookback_s=0))
    try:
        [result] = poller.run_once([USER])
        assert (result.emitted, result.deleted, result.completed) == (3, 1, True)
        events = _events(settings)
        upserts = {e["key"]["id"]: e for e in events if e["op"] == "upsert"}
        # Not the rows D1 already has; u5 holds the start mark's version, and a cycle's
        # window starts at its floor inclusive (ties are re-read, harmlessly).
        assert set(upserts) == {"u5", "u2", "new"}
        assert upserts["u2"]["row"] == {
            "id": "u2", "email": "u2@example.com", "name": "u2-v10", "active": 0,
            "updatedAt": BASE_MS + 10,
        }  # fmt: skip
        assert {e["origin"] for e in events} == {"reverse"}
        assert [e["key"] for e in events if e["op"] == "delete"] == [{"id": "u4"}]

        # The next cycle resumes at the saved watermark: it re-reads the tie at the
        # watermark, knows it sent that version already, and sends no upsert (the delete
        # is sent again: no D1 sink has applied it in this test).
        poller.run_once([USER])
        assert poller.skipped_unchanged == 1
        assert [e["op"] for e in _events(settings)[len(events) :]] == ["delete"]

        # With `deletes_every_s` the key-set diff (over D1's API: requests) waits its turn.
        poller.options = replace(poller.options, deletes_every_s=3600)
        shipped = len(_events(settings))
        poller.run_once([USER])
        assert len(_events(settings)) == shipped
        assert reverse_watermarks(engine).load("user").version == _at(BASE_MS + 11)
    finally:
        emitter.close()
        replica.close()
        engine.dispose()
