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

from consumers.dlq import read_dead_letters
from producers.backfill import BackfillOptions
from producers.capture_sql import CHANGES_DDL, CHANGES_TABLE
from producers.emitter import ChangeEmitter
from producers.keyset import MYSQL, Watermark, next_page
from producers.reverse_poller import ReversePoller, reverse_watermarks, start_marks
from producers.watermarks import WatermarkStore
from tests.consume_helpers import BASE_MS, MAPPING, prepare_target
from worker.cli.backfill import _cut_over_guard
from worker.config import Settings
from worker.errors import ConfigError, SchemaError
from worker.kafka import admin_client
from worker.sources import SqliteSource
from worker.sources.mysql import MySQLSource
from worker.topics import dlq_topic, ensure_topics, reverse_topic_for

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


def _setup(settings: Settings, tmp_path: Path, ids: list[str]) -> tuple[sa.Engine, SqliteSource]:
    engine = prepare_target(settings.target_url.get_secret_value())
    ensure_topics(
        admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(MAPPING.tables),
        1, 1, topic_of=reverse_topic_for,
    )  # fmt: skip
    for n, uid in enumerate(ids, start=1):
        _app_write(engine, uid, n)
    return engine, _replica(tmp_path / "d1.sqlite", ids)


def test_pollers_stop_at_the_cut_over_boundary(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A forward poller left running stops once `cutover start` saved the reverse marks (its
    diff would delete the rows written to MySQL since); a reverse one stops once `cutover
    rollback` cleared them (its diff would delete the rows written to D1 again)."""
    settings = make_settings()
    engine, replica = _setup(settings, tmp_path, ["u1"])
    forward, reverse = _cut_over_guard(engine, reverse=False), _cut_over_guard(engine, reverse=True)
    forward()
    with pytest.raises(ConfigError, match="cutover start"):
        reverse()
    emitter = ChangeEmitter.from_settings(
        settings, MAPPING, origin="reverse", topic_of=reverse_topic_for
    )
    poller = ReversePoller(engine, replica, emitter, before_pass=reverse)
    with pytest.raises(ConfigError, match="no reverse watermarks"):
        poller.run_once([USER])  # before it read anything
    assert _events(settings) == []
    store = reverse_watermarks(engine)
    for name, mark in start_marks(engine, [USER]).items():
        store.save(name, mark)
    reverse()
    with pytest.raises(ConfigError, match="the cut-over has started"):
        forward()
    assert store.clear() == 1
    with pytest.raises(ConfigError, match="no reverse watermarks"):
        poller.follow([USER], 0.1)
    emitter.close()
    replica.close()
    engine.dispose()


def test_start_mark_is_never_in_the_future_and_unconvertible_rows_are_dead_lettered(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    engine, replica = _setup(settings, tmp_path, ["u1"])
    with engine.begin() as conn:  # bad data carried over: dated 2100, and a BOOLEAN of 2
        conn.execute(sa.text("UPDATE `user` SET updatedAt = '2100-01-01' WHERE id = 'u1'"))
    [mark] = start_marks(engine, [USER]).values()
    assert mark.version < datetime(2100, 1, 1)
    reverse_watermarks(engine).save("user", mark)
    _app_write(engine, "late", 10**12)  # after the switch (dated well after "now")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE `user` SET active = 2 WHERE id = 'late'"))
    _app_write(engine, "fine", 10**12 + 1)
    emitter = ChangeEmitter.from_settings(
        settings, MAPPING, origin="reverse", topic_of=reverse_topic_for
    )
    poller = ReversePoller(engine, replica, emitter, BackfillOptions(lookback_s=0))
    try:
        poller.run_once([USER])
        poller.run_once([USER])  # the bad row is re-read: one dead letter per version
    finally:
        emitter.close()
    shipped = {e["key"]["id"] for e in _events(settings) if e["op"] == "upsert"}
    assert {"fine", "u1"} <= shipped and "late" not in shipped
    [letter] = read_dead_letters(settings.kafka_bootstrap, dlq_topic(settings.topic_prefix))
    assert "active" in letter.reason and letter.topic == reverse_topic_for(
        settings.topic_prefix, "user"
    )
    replica.close()
    engine.dispose()


def test_no_reverse_delete_while_d1_writes_wait_in_the_change_log(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A D1 write from just before the switch, still in the capture log, is in D1 and not
    in MySQL: the reverse diff must not take it for a row MySQL deleted."""
    settings = make_settings()
    engine, replica = _setup(settings, tmp_path, ["u1"])
    conn = sqlite3.connect(tmp_path / "d1.sqlite", isolation_level=None)
    conn.execute(CHANGES_DDL)
    conn.execute("INSERT INTO user VALUES ('d1-only', 'x@example.com', 'x', 1, 5)")
    conn.execute(
        f'INSERT INTO "{CHANGES_TABLE}" (tbl, op, pk, row, ts_ms) '
        "VALUES ('user', 'upsert', '{\"id\":\"d1-only\"}', NULL, 5)"
    )
    store = reverse_watermarks(engine)
    for name, mark in start_marks(engine, [USER]).items():
        store.save(name, mark)
    emitter = ChangeEmitter.from_settings(
        settings, MAPPING, origin="reverse", topic_of=reverse_topic_for
    )
    poller = ReversePoller(engine, replica, emitter, applied=lambda _t: lambda: True)
    try:
        [held] = poller.run_once([USER])
        conn.execute(f'DELETE FROM "{CHANGES_TABLE}"')  # the relay shipped it (MySQL still
        [diffed] = poller.run_once([USER])  # lacks it here: so now it counts as deleted)
    finally:
        emitter.close()
        conn.close()
    assert (held.deleted, diffed.deleted) == (0, 1)
    replica.close()
    engine.dispose()


def test_a_table_missing_in_mysql_is_one_line(target_url: str) -> None:
    engine = sa.create_engine(target_url)
    with pytest.raises(SchemaError, match=r"doesn't exist.*does the target schema match"):
        MySQLSource(engine).query("SELECT * FROM `missing`")
    engine.dispose()
