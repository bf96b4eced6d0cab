"""cutover check | start | rollback against real Kafka and MariaDB, through the CLI."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from consumers.loop import run_until_caught_up
from producers.backfill import BackfillOptions
from producers.keyset import Watermark
from producers.reverse_binlog import binlog_position_saved
from producers.reverse_poller import reverse_watermarks
from producers.watermarks import WatermarkStore
from tests.consume_helpers import produce_raw
from tests.simple_mapping import versioned_table
from tests.test_status import commit_to_end
from tests.test_status_reverse import cli_env
from worker.cli.backfill import run_backfill
from worker.cli.cutover import cutover_checks
from worker.cli.main import app
from worker.cli.status_report import CaptureStatus, Status, TableStatus
from worker.config import Settings
from worker.db import create_target_engine
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping
from worker.schema.writer import write_mapping
from worker.topics import reverse_topic_for
from worker.verify.record import VerifyRun, record_run
from worker.verify.runner import TableReport

MAPPING: Mapping = versioned_table("note", body="text")
BASE_MS = 1_767_000_000_000


@pytest.fixture
def replica(
    make_settings: Callable[..., Settings], tmp_path: Path, unique_name: str
) -> Iterator[tuple[Settings, sa.Engine]]:
    """A D1 file with 20 notes, its mapping, and an empty target with the schema applied."""
    source, mapping = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute('CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, "updatedAt" INTEGER)')
        conn.executemany(
            "INSERT INTO note VALUES (?, ?, ?)",
            [(f"n{i:02d}", f"body {i}", BASE_MS + i) for i in range(20)],
        )
    write_mapping(MAPPING, mapping)
    settings = make_settings(
        source_path=source,
        mapping_path=mapping,
        reverse_group_id=f"{unique_name}-reverse",
        topic_partitions=2,
    )
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)
    apply_mapping(engine, MAPPING)
    yield settings, engine
    engine.dispose()


def cutover(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cutover", *args], env=cli_env(settings))
    return result.exit_code, result.stdout + result.stderr


def checks(settings: Settings) -> tuple[int, dict[str, bool]]:
    code, out = cutover(settings, "check", "--json")
    return code, {c["name"]: c["ok"] for c in json.loads(out)["checks"]}


@pytest.mark.integration
def test_check_is_not_safe_while_forward_lags_and_safe_once_applied_and_verified(
    replica: tuple[Settings, sa.Engine],
) -> None:
    """Backfilled but not applied: lag and verify fail; applied: only verify; verified: safe."""
    settings, _engine = replica
    assert run_backfill(settings, MAPPING, MAPPING.in_level_order(), BackfillOptions()) >= 20
    found_before = {"forward lag": False, "capture": True, "verify": False, "dead letters": True}
    assert checks(settings) == (1, {**found_before, "forward poller": True})
    outcome = run_until_caught_up(settings, MAPPING, timeout_s=60)
    assert outcome.caught_up and outcome.dead_letters == 0
    code, found = checks(settings)
    assert (code, found["forward lag"], found["verify"]) == (1, True, False)

    verified = CliRunner().invoke(app, ["verify", "--settle-seconds", "0"], env=cli_env(settings))
    assert verified.exit_code == 0, verified.stdout
    assert checks(settings) == (0, dict.fromkeys(found, True))
    code, text = cutover(settings, "check")  # not a terminal: one plain line per check
    assert code == 0
    assert "ok      forward lag   0 on 1 table(s)" in text
    assert "safe to switch writes to MySQL" in text


@pytest.mark.integration
def test_start_writes_reverse_marks_and_topics_once_and_rollback_clears_them(
    replica: tuple[Settings, sa.Engine],
) -> None:
    """start: refused while not safe; then MySQL's highest version per table becomes the
    reverse start mark and the reverse topic exists; a second start is refused. rollback:
    refused while the reverse topic lags, then clears the marks; start may run again."""
    settings, engine = replica
    code, out = cutover(settings, "start")
    assert code == 1 and "no verify run recorded" in out
    # Without capture, only a forward poller that has read every D1 row lets it pass.
    assert "forward poller: D1 rows newer than its watermark: note=20" in out
    assert reverse_watermarks(engine).all() == {}
    WatermarkStore(engine).save("note", Watermark("incremental", version=BASE_MS + 19))

    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO note (id, body, updatedAt) VALUES ('n1', 'x', :v)"),
            {"v": datetime(2026, 3, 1, 12, 0, 0, 250_000)},
        )
    record_run(engine, [TableReport("note", processed=1, matching=1)])
    code, out = cutover(settings, "start")
    assert code == 0, out
    marks = reverse_watermarks(engine).all()
    assert set(marks) == {"note"}
    assert (marks["note"].phase, marks["note"].version) == (
        "incremental",
        datetime(2026, 3, 1, 12, 0, 0, 250_000),
    )
    reverse = reverse_topic_for(settings.topic_prefix, "note")
    assert reverse in admin_client(settings.kafka_bootstrap).list_topics(timeout=10).topics
    assert "d1cdc backfill --reverse --follow" in out

    assert binlog_position_saved(engine) is not None  # MariaDB here serves a row binlog
    code, out = cutover(settings, "start")
    assert code == 1 and "already started" in out

    produce_raw(settings.kafka_bootstrap, reverse, b'{"id":"n1"}', b"{}")  # not applied yet
    code, out = cutover(settings, "rollback")
    assert code == 1 and "D1 has not caught up with MySQL: reverse lag 1" in out
    assert set(reverse_watermarks(engine).all()) == {"note"}
    commit_to_end(settings, settings.reverse_group_id, reverse)  # the D1 sink applied it
    code, out = cutover(settings, "rollback")
    assert code == 0, out
    assert "cleared 1 reverse watermark(s)" in out
    assert reverse_watermarks(engine).all() == {}
    assert binlog_position_saved(engine) is None
    assert cutover(settings, "rollback")[1].startswith("no cut-over in progress")
    assert cutover(settings, "start")[0] == 0


def test_checks_fail_on_unshipped_change_log_rebalance_and_stale_verify() -> None:
    """Cut-over needs an empty change log (not only a relay within its alert threshold), a
    group that is not moving partitions, and a clean verify younger than the limit."""
    now = datetime.now(UTC).replace(tzinfo=None)
    status = Status(
        tables=[TableStatus("note", end_offset=3, committed=3)],
        last_verify=VerifyRun(now - timedelta(minutes=90), clean=True, tables=1, differences=0),
        group_state="PREPARING_REBALANCING",
        capture=CaptureStatus(depth=2, lag_s=1.0),
    )
    found = {c.name: c for c in cutover_checks(status, verify_max_age=timedelta(minutes=60))}
    assert {name: c.ok for name, c in found.items()} == {
        "forward lag": False,
        "capture": False,
        "verify": False,
        "dead letters": True,
    }
    assert "rebalancing" in found["forward lag"].detail
    assert "change log holds 2 entries" in found["capture"].detail
    assert "too old" in found["verify"].detail

    status.group_state, status.capture = "STABLE", CaptureStatus()
    status.last_verify = VerifyRun(now, clean=True, tables=1, differences=0)
    assert all(c.ok for c in cutover_checks(status, verify_max_age=timedelta(minutes=60)))
