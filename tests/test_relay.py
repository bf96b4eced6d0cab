"""Captured writes → `d1cdc relay` → Kafka → consume → MariaDB, compared row by row.

The comparison is `table_compare.differences` (independent of `d1cdc verify`). Writes of
every kind go straight to SQLite, bypassing any shim: only the triggers see them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from table_compare import differences

from consumers.loop import run_until_caught_up
from producers.capture_sql import install_statements
from producers.changelog import ChangeLog
from producers.emitter import ChangeEmitter
from producers.relay import Relay
from tests.consume_helpers import wait_for
from tests.d1_api_server import serve_d1_api
from worker.config import Settings
from worker.db import create_target_engine
from worker.demo import generate_demo_db, ground_truth_mapping
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping
from worker.sources import SqliteSource, WritableSource
from worker.sources.d1http import D1HttpSource
from worker.topics import ensure_topics

pytestmark = pytest.mark.integration
TABLES = ("user", "team", "team_membership", "tag")


def subset() -> Mapping:
    full = ground_truth_mapping()
    return Mapping({name: full.tables[name] for name in TABLES})


def install(path: Path, mapping: Mapping) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in install_statements(mapping):
        conn.execute(statement)
    return conn


def write_every_kind(conn: sqlite3.Connection, rounds: int) -> None:
    """Inserts, updates that leave updatedAt alone, PK changes, deletes, upserts, rollbacks."""
    tags = [r[0] for r in conn.execute("SELECT id FROM tag ORDER BY id")]
    for i in range(rounds):
        tid = tags[i % len(tags)]
        conn.execute("UPDATE tag SET name = name || '!' WHERE id = ?", (tid,))  # raw, no bump
        if i % 5 == 0:
            conn.execute("UPDATE tag SET id = ? WHERE id = ?", (f"{tid}_m{i}", tid))
            tags[i % len(tags)] = f"{tid}_m{i}"
        if i % 7 == 0:
            conn.execute(
                "DELETE FROM team_membership WHERE rowid IN "
                "(SELECT rowid FROM team_membership LIMIT 1)"
            )
        conn.execute("BEGIN")
        conn.execute("UPDATE user SET email = email || 'x' WHERE rowid = ?", (i + 1,))
        conn.execute("ROLLBACK")
    conn.execute("UPDATE team SET updatedAt = updatedAt + 1 WHERE rowid % 3 = 0")


def relay_once(settings: Settings, source: WritableSource, mapping: Mapping) -> int:
    emitter = ChangeEmitter.from_settings(settings, mapping, origin="capture")
    relay = Relay(
        ChangeLog(source), emitter, mapping, bootstrap=settings.kafka_bootstrap, batch_size=200
    )
    return relay.run(once=True).shipped


def prepare(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> tuple[Settings, Mapping, Path, sqlite3.Connection]:
    path = tmp_path / "d1.sqlite"
    generate_demo_db(path, scale=0.2, seed=3)
    mapping = subset()
    settings = make_settings(source_path=path, topic_partitions=2)
    ensure_topics(
        admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(mapping.tables), 2, 1
    )
    return settings, mapping, path, install(path, mapping)


def test_captured_writes_of_every_kind_reach_mysql_exactly(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The demo rows (re-written once so the triggers log them) plus every kind of write:
    after relay and consume the target equals the SQLite file, and the log is empty."""
    settings, mapping, path, conn = prepare(make_settings, tmp_path)
    for table in TABLES:  # a no-op UPDATE fires the trigger: the initial snapshot, captured
        conn.execute(f'UPDATE "{table}" SET rowid = rowid')
    write_every_kind(conn, 40)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    source = SqliteSource(path, writable=True)
    shipped = relay_once(settings, source, mapping)
    assert shipped > 100
    assert ChangeLog(source).state().depth == 0
    outcome = run_until_caught_up(settings, mapping, timeout_s=180)
    assert outcome.caught_up and outcome.dead_letters == 0
    assert differences(path, engine, mapping) == []


def test_the_d1_http_path_relays_the_same(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Through the D1 query API (tests/d1_api_server.py): reads, fenced deletes, the lease."""
    settings, mapping, path, conn = prepare(make_settings, tmp_path)
    for table in TABLES:
        conn.execute(f'UPDATE "{table}" SET rowid = rowid')
    write_every_kind(conn, 15)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    with serve_d1_api(path) as server:
        source = D1HttpSource("acct", "db1", "test-token", server.base_url)
        shipped = relay_once(settings, source, mapping)
        assert shipped > 0 and ChangeLog(source).state().depth == 0
        assert all(len(params) <= 100 for _sql, params in server.queries)
    outcome = run_until_caught_up(settings, mapping, timeout_s=180)
    assert outcome.caught_up and outcome.dead_letters == 0
    assert (
        differences(
            path,
            engine,
            mapping,
        )
        == []
    )


def cli_env(settings: Settings, path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_SOURCE_PATH": str(path),
        "D1CDC_MAPPING_PATH": str(path.with_suffix(".mapping.toml")),
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_FORMAT": "json",
        "D1CDC_RELAY_BATCH_SIZE": "50",
        "D1CDC_RELAY_LEASE_S": "5",
    }


def test_kill_9_mid_drain_loses_nothing_and_a_second_relay_stands_by(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """`d1cdc relay` killed with SIGKILL while draining; a standby relay (started beside it,
    refused the lease) takes over once the lease runs out; the target equals the source."""
    from worker.schema.writer import write_mapping

    settings, mapping, path, conn = prepare(make_settings, tmp_path)
    write_mapping(mapping, path.with_suffix(".mapping.toml"))
    for table in TABLES:
        conn.execute(f'UPDATE "{table}" SET rowid = rowid')
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    env = cli_env(settings, path)
    cmd = [sys.executable, "-m", "worker", "relay"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = ChangeLog(SqliteSource(path))
    start = log.state().depth
    wait_for(lambda: log.state().depth < start, timeout_s=60)
    second = subprocess.Popen(
        [*cmd, "--once"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert second.wait(90) == 0, second.stderr.read().decode() if second.stderr else ""
    assert log.state().depth == 0
    outcome = run_until_caught_up(settings, mapping, timeout_s=180)
    assert outcome.caught_up
    assert differences(path, engine, mapping) == []


def test_relay_runs_beside_live_writes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A long-lived relay keeps up with a writer; stopping it releases the lease."""
    settings, mapping, path, conn = prepare(make_settings, tmp_path)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    for table in TABLES:
        conn.execute(f'UPDATE "{table}" SET rowid = rowid')
    source = SqliteSource(path, writable=True)
    emitter = ChangeEmitter.from_settings(settings, mapping, origin="capture")
    relay = Relay(
        ChangeLog(source), emitter, mapping, bootstrap=settings.kafka_bootstrap, interval_s=0.1
    )
    thread = threading.Thread(target=relay.run)
    thread.start()
    try:
        write_every_kind(conn, 60)
        wait_for(lambda: ChangeLog(SqliteSource(path)).state().depth == 0, timeout_s=60)
    finally:
        relay.stop()
        thread.join(30)
    assert conn.execute('SELECT count(*) FROM "_d1cdc_relay_lease"').fetchone()[0] == 0
    outcome = run_until_caught_up(settings, mapping, timeout_s=180)
    assert outcome.caught_up
    assert differences(path, engine, mapping) == []
