"""The backfill poller against a real broker and MariaDB (events read back from the topics)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from backfill_fixtures import BASE_TS, load_test_mapping, make_source, write_mapping
from d1_api_server import serve_d1_api
from topic_reader import read_topic

from producers.backfill import Backfill, BackfillOptions
from producers.emitter import ChangeEmitter
from producers.keyset import Watermark
from producers.watermarks import WatermarkStore
from tests.consume_helpers import wait_for
from worker.config import Settings
from worker.db import create_target_engine
from worker.envelope import decode_event
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.sources import SqliteSource
from worker.sources.d1http import D1HttpSource
from worker.topics import ensure_topics, topic_for

pytestmark = pytest.mark.integration
MAPPING = load_test_mapping()


def _poller(settings: Settings, source_path: Path, **options: object) -> Backfill:
    ensure_topics(
        admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(MAPPING.tables), 2, 1
    )
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)
    emitter = ChangeEmitter.from_settings(settings, MAPPING, origin="backfill")
    opts = BackfillOptions(**{"chunk": 7, "lookback_s": 60, **options})  # type: ignore[arg-type]
    return Backfill(SqliteSource(source_path), emitter, WatermarkStore(engine), engine, opts)


def _ids(settings: Settings, table: str) -> list[str]:
    pk = MAPPING.table(table).primary_key[0]
    messages = read_topic(settings.kafka_bootstrap, topic_for(settings.topic_prefix, table))
    return [json.loads(v)["row"][pk] for _, v in messages if v and json.loads(v)["op"] == "upsert"]


def test_first_pass_emits_every_row_as_a_backfill_upsert(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Every source row of every table reaches its topic, origin backfill, row as stored.

    (Right after the snapshot the incremental phase re-reads the lookback window, so rows
    stamped within it appear twice: at-least-once by design.)"""
    settings = make_settings()
    source = make_source(tmp_path / "src.sqlite", members=40)
    results = _poller(settings, source, detect_deletes=False).run_once(MAPPING.in_level_order())
    assert [r.table for r in results] == ["limit", "team", "member"]  # level order
    assert set(_ids(settings, "member")) == {f"mb{i:05d}" for i in range(40)}
    assert sorted(_ids(settings, "limit")) == ["k0", "k1", "k2"]  # no version: one scan
    first = read_topic(settings.kafka_bootstrap, topic_for(settings.topic_prefix, "team"))[0]
    event = decode_event(first[1])
    assert event.origin == "backfill" and isinstance(event.row, dict)
    assert event.row["updatedAt"] == BASE_TS  # raw Unix seconds, not converted


def test_watermark_is_saved_and_a_second_pass_rereads_only_the_lookback_window(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """After the snapshot, a pass re-emits rows newer than watermark - lookback, plus changes."""
    settings = make_settings()
    source = make_source(tmp_path / "src.sqlite", members=30)
    conn = sqlite3.connect(source)
    conn.execute("UPDATE member SET updatedAt = ? WHERE id < 'mb00010'", (BASE_TS - 3600,))
    conn.commit()
    poller = _poller(settings, source, detect_deletes=False)
    [first] = poller.run_once([MAPPING.table("member")])
    mark = poller.store.load("member")
    assert mark is not None and mark.phase == "incremental" and mark.version == BASE_TS + 6

    conn.execute(
        "UPDATE member SET score = -1, updatedAt = ? WHERE id = 'mb00003'", (BASE_TS + 100,)
    )
    conn.commit()
    [second] = poller.run_once([MAPPING.table("member")])
    # 20 rows inside the 60 s lookback, plus the one changed row; not the 9 old ones.
    assert second.emitted == 21
    assert poller.store.load("member") == Watermark(
        "incremental",
        pk=("mb00003",),
        version=BASE_TS + 100,
        rows_emitted=first.emitted + second.emitted,
    )


def test_late_commit_behind_the_watermark_is_caught_by_the_lookback(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A row whose updatedAt predates the watermark (committed late) is still emitted."""
    settings = make_settings()
    source = make_source(tmp_path / "src.sqlite", members=10)
    poller = _poller(settings, source, detect_deletes=False)
    poller.run_once([MAPPING.table("member")])
    conn = sqlite3.connect(source)
    conn.execute("INSERT INTO member VALUES ('mb-late', 'tm000', 0, ?)", (BASE_TS + 1,))
    conn.execute("INSERT INTO member VALUES ('mb-tie', 'tm000', 0, ?)", (BASE_TS + 6,))
    conn.commit()
    poller.run_once([MAPPING.table("member")])
    ids = _ids(settings, "member")
    assert "mb-late" in ids and "mb-tie" in ids


def test_rows_deleted_at_the_source_are_emitted_as_deletes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Keys in the target but gone from the source become delete events + tombstones."""
    settings = make_settings()
    source = make_source(tmp_path / "src.sqlite", teams=3)
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)
    apply_mapping(engine, MAPPING)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO `team` (id, name) VALUES ('tm000','a'), ('tm001','b'), ('gone1','c')"
        )
    [result] = _poller(settings, source).run_once([MAPPING.table("team")])
    assert result.deleted == 1
    messages = read_topic(settings.kafka_bootstrap, topic_for(settings.topic_prefix, "team"))
    deletes = [decode_event(v) for _, v in messages if v and json.loads(v)["op"] == "delete"]
    assert [(d.key, d.origin) for d in deletes] == [({"id": "gone1"}, "backfill")]
    assert [k for k, v in messages if v is None] == [b'{"id":"gone1"}']


def test_stop_mid_table_saves_the_acknowledged_position_and_a_rerun_resumes_there(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Stop (SIGTERM) after the first chunk: the pass ends incomplete with that chunk's
    position saved; the next run continues after it and completes the table."""
    settings = make_settings()
    source = make_source(tmp_path / "src.sqlite", members=50)
    poller = _poller(settings, source, detect_deletes=False, lookback_s=0)

    class StopAfterFirstChunk:
        enabled = False

        def start(self, table: str, total: int | None) -> None:
            pass

        def advance(self, table: str, rows: int) -> None:
            poller.stop.set()

    poller.progress = StopAfterFirstChunk()
    [stopped] = poller.run_once([MAPPING.table("member")])
    assert (stopped.completed, stopped.emitted) == (False, 7)
    saved = poller.store.load("member")
    assert saved is not None and (saved.phase, saved.pk) == ("snapshot", ("mb00006",))

    rerun = _poller(settings, source, detect_deletes=False, lookback_s=0)
    [done] = rerun.run_once([MAPPING.table("member")])
    assert done.completed
    assert set(_ids(settings, "member")) == {f"mb{i:05d}" for i in range(50)}


MEMBERS = 100_000


D1CDC = str(Path(sys.executable).parent / "d1cdc")


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment of a `d1cdc` child process talking to this test's services."""
    return {
        **os.environ,
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_LOG_FORMAT": "json",
    }


def test_kill_9_mid_table_then_restart_misses_no_row(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """`d1cdc backfill` killed with SIGKILL mid-table and run again: every row is in Kafka."""
    settings = make_settings()
    # Large enough that the first run cannot finish between two looks at its watermark.
    source = make_source(tmp_path / "src.sqlite", teams=2, members=MEMBERS)
    mapping_path = write_mapping(tmp_path / "mapping.toml")
    env = cli_env(settings)
    command = [
        D1CDC,
        "backfill",
        "--tables",
        "member",
        "--chunk",
        "25",
        "--lookback",
        "0",
        "--no-deletes",
        "--source-path",
        str(source),
        "--mapping",
        str(mapping_path),
    ]
    store = WatermarkStore(create_target_engine(settings.target_url.get_secret_value()))
    first = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    # Polled often: the kill must land before the run finishes the table.
    wait_for(
        lambda: (mark := store.load("member")) is not None and mark.rows_emitted >= 500,
        60,
        "the first run to checkpoint 500 rows",
        interval_s=0.05,
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = store.load("member")
    assert killed_at is not None and killed_at.phase == "snapshot"  # really mid-table
    assert killed_at.rows_emitted < MEMBERS

    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL, timeout=120)
    ids = _ids(settings, "member")
    assert set(ids) == {f"mb{i:05d}" for i in range(MEMBERS)}
    # Resumed from the watermark, not from the top: the first row (oldest version, so no
    # incremental re-read reaches it) was emitted by the killed run only.
    assert ids.count("mb00000") == 1


def test_backfill_reads_through_the_d1_http_api(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The same poller over the D1 HTTP source (local API server) emits every row, and
    every request it makes stays within D1's 100-parameter limit."""
    settings = make_settings()
    source_path = make_source(tmp_path / "src.sqlite", teams=3, members=120)
    ensure_topics(
        admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(MAPPING.tables), 1, 1
    )
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)
    apply_mapping(engine, MAPPING)
    with serve_d1_api(source_path, token="tok") as server:
        source = D1HttpSource("acct", "db1", "tok", server.base_url)
        poller = Backfill(
            source,
            ChangeEmitter.from_settings(settings, MAPPING, origin="backfill"),
            WatermarkStore(engine),
            engine,
            BackfillOptions(chunk=50),
        )
        results = poller.run_once(MAPPING.in_level_order())
    assert all(r.completed for r in results)
    assert set(_ids(settings, "member")) == {f"mb{i:05d}" for i in range(120)}
    assert all(len(params) <= 100 for _, params in server.queries)


def test_follow_mode_exits_cleanly_on_sigterm(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """`backfill --follow` keeps polling until SIGTERM, then exits 0 with its watermark saved."""
    settings = make_settings()
    source = make_source(tmp_path / "src.sqlite", members=30)
    mapping_path = write_mapping(tmp_path / "mapping.toml")
    env = cli_env(settings)
    command = [
        D1CDC, "backfill", "--follow", "--interval", "0.2",
        "--source-path", str(source), "--mapping", str(mapping_path),
    ]  # fmt: skip
    store = WatermarkStore(create_target_engine(settings.target_url.get_secret_value()))
    follower = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: (mark := store.load("member")) is not None and mark.phase == "incremental",
            60,
            "the follower to finish its first pass",
        )
        assert follower.poll() is None  # still following
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
