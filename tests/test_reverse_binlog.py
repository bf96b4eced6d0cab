"""The binlog reverse source (MySQL's row binlog → reverse topics, issue 16) against a real
broker and MariaDB started by ops/services.sh with a row binlog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from topic_reader import read_topic

from producers.emitter import ChangeEmitter
from producers.reverse_binlog import (
    BinlogPositionStore,
    BinlogReverseSource,
    binlog_problem,
    check_binlog,
    mark_binlog_start,
    mysql_row,
    run_reverse_binlog,
)
from tests.edge_mapping import edge_mapping
from worker.config import Settings
from worker.db import create_target_engine
from worker.envelope import ChangeEvent, decode_event, encode_event, new_event
from worker.errors import ConfigError, SchemaError, ServiceError
from worker.schema.ddl import apply_mapping
from worker.schema.unconvert import unconvert_row
from worker.schema.writer import write_mapping
from worker.topics import dlq_topic, ensure_table_topics, reverse_topic_for

pytestmark = pytest.mark.integration
MAPPING = edge_mapping()
ORDER = MAPPING.table("order")
TABLES = [t.name for t in MAPPING.in_level_order()]
ROW_BINLOG = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
}

INSERT = sa.text(
    "INSERT INTO `order` (`key`, `select`, `we``ird col`, `index`, isActive, doc, price, ratio, "
    "avatar, bornAt, seenAtMs, updatedAt, updateCounter) VALUES (:key, :select, 'w', :index, "
    "1, :doc, 12.345678, 1.5, x'00ff10', '2024-01-02 03:04:05.123', "
    "'2024-01-02 03:04:05.678', '2025-05-06 07:08:09', 1)"
)


@pytest.fixture
def engine(target_url: str) -> Iterator[sa.Engine]:
    engine = create_target_engine(target_url, pool_size=2)
    with engine.connect() as conn:
        if problem := _server_problem(conn):
            pytest.fail(
                f"MariaDB has no row binlog ({problem}); it was started before ops/services.sh "
                "enabled it: `bash ops/services.sh down && bash ops/services.sh up`",
                pytrace=False,
            )
    apply_mapping(engine, MAPPING)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """This test's settings, its reverse topics created and their configs readable (a
    describe right after a create can still answer 'unknown topic')."""
    settings = make_settings()

    def ready() -> bool:  # a call that created nothing has described every topic
        try:
            return not ensure_table_topics(settings, TABLES, topic_of=reverse_topic_for).created
        except ServiceError:
            return False

    _await(ready, "readable reverse topics")
    return settings


def _server_problem(conn: sa.Connection) -> str | None:
    try:
        check_binlog(conn)
    except ConfigError as exc:
        return str(exc)
    return None


@contextmanager
def following(settings: Settings, engine: sa.Engine) -> Iterator[threading.Event]:
    """The source following the binlog in a thread, from the moment its start is saved."""
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            run_reverse_binlog(settings, MAPPING.in_level_order(), stop=stop)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="binlog-source")
    thread.start()
    try:
        _await(lambda: failed or BinlogPositionStore(engine).load() is not None, "a start")
        yield stop
    finally:
        stop.set()
        thread.join(timeout=15)
        if failed:  # the source's own error explains any failure of the test's body
            raise failed[0]
    assert not thread.is_alive(), "the source did not stop within 15 s of its stop request"


def _await(done: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := done()):
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.1)
    return result


def _events(settings: Settings, count: int) -> list[ChangeEvent]:
    """The first `count` events of the order table's reverse topic (tombstones aside)."""
    topic = reverse_topic_for(settings.topic_prefix, "order")

    def enough() -> list[ChangeEvent] | None:
        try:
            values = [v for _, v in read_topic(settings.kafka_bootstrap, topic) if v is not None]
        except (AssertionError, KeyError):  # the topic is still being created
            return None
        return [decode_event(v) for v in values] if len(values) >= count else None

    events: list[ChangeEvent] = _await(enough, f"{count} events on {topic}")
    return events


def _start_at_the_end(engine: sa.Engine) -> None:
    """What a first start saves, without starting: the binlog's current end."""
    with engine.connect() as conn:
        BinlogPositionStore(engine).save(check_binlog(conn))


def _as_driver_reads(engine: sa.Engine, key: str) -> dict[str, Any]:
    """The row as PyMySQL reads it, as the poller would send it (source representation)."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM `order` WHERE `key` = :k"), {"k": key}).one()
    source_row = unconvert_row(ORDER, row._asdict())
    _, value = encode_event(new_event("order", "upsert", {"key": key}, source_row))
    wire_row = decode_event(value).row  # as the event carries it (JSON: ints > 2^53 as text)
    assert wire_row is not None
    return wire_row


def test_binlog_problem_names_the_missing_setting() -> None:
    assert binlog_problem(ROW_BINLOG) is None
    assert binlog_problem({**ROW_BINLOG, "binlog_row_metadata": "full"}) is None
    assert "log_bin=OFF" in str(binlog_problem({**ROW_BINLOG, "log_bin": "OFF"}))
    assert "log_bin=OFF" in str(binlog_problem({}))
    assert "PlanetScale" in str(binlog_problem({}))
    assert "binlog_format=ROW" in str(binlog_problem({**ROW_BINLOG, "binlog_format": "MIXED"}))
    minimal = {**ROW_BINLOG, "binlog_row_image": "MINIMAL"}
    assert "binlog_row_image=FULL" in str(binlog_problem(minimal))
    no_metadata = {**ROW_BINLOG, "binlog_row_metadata": "NO_LOG"}
    assert "binlog_row_metadata=FULL" in str(binlog_problem(no_metadata))
    partial = {**ROW_BINLOG, "binlog_row_value_options": "PARTIAL_JSON"}
    assert "binlog_row_value_options" in str(binlog_problem(partial))
    older = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL"}
    assert binlog_problem(older) is None  # a server without the variable is not asked for it


def test_mysql_8_binary_json_is_read_back_as_the_text_the_driver_returns() -> None:
    image = {name: None for name in ORDER.columns}
    binary = frozenset({"doc"})  # MySQL 8's JSON type, parsed by the library
    assert mysql_row(ORDER, {**image, "doc": {b"b": [1, b"x", None]}}, binary)["doc"] == (
        '{"b":[1,"x",null]}'
    )
    assert mysql_row(ORDER, {**image, "doc": b"abc"}, binary)["doc"] == '"abc"'  # a JSON string
    assert mysql_row(ORDER, {**image, "doc": '{"b": 1}'})["doc"] == '{"b": 1}'  # MariaDB: text
    with pytest.raises(SchemaError, match="binlog_row_metadata=FULL"):
        mysql_row(ORDER, {"key": "k"})


def test_a_user_without_replication_client_gets_a_one_line_error(
    engine: sa.Engine, target_url: str
) -> None:
    user, password = f"norepl{uuid.uuid4().hex[:6]}", "norepl-pw-1"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'"))
    server = sa.make_url(target_url)
    url = sa.URL.create(server.drivername, user, password, server.host, server.port)
    weak = create_target_engine(url.render_as_string(hide_password=False), pool_size=1)
    try:
        with weak.connect() as conn, pytest.raises(ConfigError) as refused:
            check_binlog(conn)
        assert "REPLICATION CLIENT" in str(refused.value)
        assert "\n" not in str(refused.value)
    finally:
        weak.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP USER '{user}'@'127.0.0.1'"))


def test_row_changes_arrive_as_reverse_events_in_source_representation(
    settings: Settings, engine: sa.Engine
) -> None:
    with following(settings, engine):
        with engine.begin() as conn:
            conn.execute(INSERT, {"key": "k1", "select": 2**53 + 1, "index": 1, "doc": '{"b": 1}'})
            # Not in the mapping: no event (only_tables, and the source's own check).
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS unmapped (id INT PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO unmapped VALUES (1)"))
        inserted = _as_driver_reads(engine, "k1")
        with engine.begin() as conn:  # a raw SQL write that does not bump updatedAt
            conn.execute(sa.text("UPDATE `order` SET `we``ird col` = 'raw', isActive = 0"))
        raw = _as_driver_reads(engine, "k1")
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM `order` WHERE `key` = 'k1'"))
        insert, update, delete = _events(settings, 3)

    assert [e.op for e in (insert, update, delete)] == ["upsert", "upsert", "delete"]
    assert {e.origin for e in (insert, update, delete)} == {"reverse"}
    assert insert.row == inserted and update.row == raw  # what the driver would have read
    assert insert.key == {"key": "k1", "select": str(2**53 + 1)}  # exact beyond 2^53
    assert update.row is not None and insert.row is not None
    assert update.row["updatedAt"] == insert.row["updatedAt"]  # invisible to the poller
    assert (update.row["we`ird col"], update.row["isActive"]) == ("raw", 0)
    assert insert.row["updatedAt"] == 1746515289  # timestamp_s: Unix seconds
    assert insert.row["seenAtMs"] == 1704164645678  # timestamp_ms: Unix milliseconds
    assert insert.row["bornAt"] == "2024-01-02 03:04:05.123"  # timestamp_text
    assert insert.row["doc"] == '{"b":1}'  # JSON text, as JSON.stringify writes it
    assert (insert.row["isActive"], insert.row["avatar"]) == (1, b"\x00\xff\x10")
    assert insert.row["price"] == "12.345678"  # DECIMAL as text: every digit
    assert delete.key == insert.key and delete.row == raw  # the before-image
    # One key's events keep their order for the version rules, even within one second.
    assert insert.ts_ms < update.ts_ms < delete.ts_ms


def test_an_update_of_the_primary_key_deletes_the_old_key(
    settings: Settings, engine: sa.Engine
) -> None:
    tables = MAPPING.in_level_order()
    _start_at_the_end(engine)
    with engine.begin() as conn:
        conn.execute(INSERT, {"key": "old", "select": 1, "index": 1, "doc": "{}"})
        conn.execute(sa.text("UPDATE `order` SET `key` = 'new' WHERE `key` = 'old'"))
    assert run_reverse_binlog(settings, tables, follow=False) == 3
    events = _events(settings, 3)

    by_key = {k: [e.op for e in events if e.key["key"] == k] for k in ("old", "new")}
    assert by_key == {"old": ["upsert", "delete"], "new": ["upsert"]}
    (gone,) = [e for e in events if e.op == "delete"]
    assert gone.ts_ms < max(e.ts_ms for e in events if e.key["key"] == "new")


def test_a_row_d1_cannot_hold_is_dead_lettered_and_later_rows_still_arrive(
    settings: Settings, engine: sa.Engine
) -> None:
    tables = MAPPING.in_level_order()
    _start_at_the_end(engine)
    with engine.begin() as conn:
        conn.execute(INSERT, {"key": "two", "select": 1, "index": 1, "doc": "{}"})
        conn.execute(sa.text("UPDATE `order` SET isActive = 2"))  # raw SQL: not a boolean
        conn.execute(INSERT, {"key": "fine", "select": 2, "index": 2, "doc": "{}"})
    assert run_reverse_binlog(settings, tables, follow=False) == 3

    assert sorted(e.key["key"] for e in _events(settings, 2)) == ["fine", "two"]
    letters = read_topic(settings.kafka_bootstrap, dlq_topic(settings.topic_prefix))
    assert [json.loads(key) for key, _ in letters] == [{"key": "two", "select": 1}]


def test_a_restart_resumes_at_the_saved_position_without_losing_events(
    settings: Settings, engine: sa.Engine
) -> None:
    tables = MAPPING.in_level_order()
    assert run_reverse_binlog(settings, tables, follow=False) == 0  # first start: the end
    with engine.begin() as conn:
        conn.execute(INSERT, {"key": "a", "select": 1, "index": 1, "doc": "[]"})
    assert run_reverse_binlog(settings, tables, follow=False) == 1
    saved = BinlogPositionStore(engine).load()
    with engine.begin() as conn:  # written while no source runs
        conn.execute(INSERT, {"key": "b", "select": 2, "index": 2, "doc": "[]"})
        conn.execute(INSERT, {"key": "c", "select": 3, "index": 3, "doc": "[]"})
    with following(settings, engine):
        events = _events(settings, 3)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE `order` SET updateCounter = 2 WHERE `key` = 'c'"))
        events = _events(settings, 4)

    # none lost, none repeated (one key's events in order: the topic has several partitions)
    assert sorted(e.key["key"] for e in events) == ["a", "b", "c", "c"]
    last_c = [e for e in events if e.key["key"] == "c"][-1]
    assert last_c.row is not None and last_c.row["updateCounter"] == 2
    later = BinlogPositionStore(engine).load()
    assert saved is not None and later is not None
    assert (later.log_file, later.log_pos) > (saved.log_file, saved.log_pos)


def test_a_source_started_after_the_switch_ships_what_was_written_since_cutover_start(
    settings: Settings, engine: sa.Engine
) -> None:
    """`cutover start` marks the binlog's end with the writes frozen: a binlog source that
    starts only later still ships every write made after the switch."""
    assert mark_binlog_start(engine) is not None  # what `cutover start` does
    with engine.begin() as conn:  # the app, after the flip, before the source runs
        conn.execute(INSERT, {"key": "early", "select": 1, "index": 1, "doc": "[]"})
    assert run_reverse_binlog(settings, MAPPING.in_level_order(), follow=False) == 1
    assert [e.key["key"] for e in _events(settings, 1)] == ["early"]


def test_nothing_unacknowledged_is_saved_so_a_crash_replays_it(
    settings: Settings, engine: sa.Engine
) -> None:
    tables = MAPPING.in_level_order()
    _start_at_the_end(engine)
    with engine.begin() as conn:
        conn.execute(INSERT, {"key": "lost?", "select": 1, "index": 1, "doc": "{}"})
    # Kafka unreachable (a closed port): nothing is acknowledged, so nothing may be saved.
    emitter = ChangeEmitter(
        "127.0.0.1:1", settings.topic_prefix, origin="reverse", topic_of=reverse_topic_for,
        **{"message.timeout.ms": 500},
    )  # fmt: skip
    with pytest.raises(ServiceError):
        BinlogReverseSource(settings, tables, emitter, engine).run(follow=False)
    assert run_reverse_binlog(settings, tables, follow=False) == 1
    assert [e.key["key"] for e in _events(settings, 1)] == ["lost?"]


D1CDC = [sys.executable, "-c", "from worker.cli.main import run; run()"]


def _cli(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_MAPPING_PATH": str(settings.mapping_path),
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_FORMAT": "json",
    }
    command = [*D1CDC, "backfill", "--reverse", "--binlog", "--follow"]
    return subprocess.Popen(command, env=env, stderr=log.open("ab"))


def test_the_cli_resumes_after_kill_9_and_stops_on_sigterm(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    write_mapping(MAPPING, settings.mapping_path)
    log = tmp_path / "source.log"

    def write(key: str, n: int) -> None:
        with engine.begin() as conn:
            conn.execute(INSERT, {"key": key, "select": n, "index": n, "doc": "{}"})

    source = _cli(settings, log)
    try:
        _await(lambda: BinlogPositionStore(engine).load() is not None, "a start")
        write("k1", 1)
        _events(settings, 1)
        write("k2", 2)  # may or may not be emitted or saved before the kill: either is fine
        source.send_signal(signal.SIGKILL)
        source.wait(10)
        write("k3", 3)  # while no source runs
        source = _cli(settings, log)
        events = _events(settings, 3)
        assert {e.key["key"] for e in events} >= {"k1", "k2", "k3"}, log.read_text()
        source.send_signal(signal.SIGTERM)
        assert source.wait(10) == 0, log.read_text()
    finally:
        if source.poll() is None:
            source.kill()
            source.wait(10)
    assert "binlog reverse source emitted" in log.read_text()
