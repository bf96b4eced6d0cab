"""status --reverse: the rollback verdict follows the D1 sink's group, its dead letters and
the reverse poller's watermarks, on the reverse topics only."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from typer.testing import CliRunner

from producers.keyset import Watermark
from producers.reverse_poller import reverse_watermarks
from tests.simple_mapping import versioned_table
from tests.test_status import commit_to_end
from worker.cli.main import app
from worker.cli.status_report import (
    DLQ_ACK_GROUP_SUFFIX,
    REVERSE,
    collect_status,
    rollback_safety,
)
from worker.config import Settings
from worker.db import create_target_engine
from worker.dead_letters import headers_for
from worker.envelope import encode_event, new_event
from worker.kafka import admin_client, producer_config
from worker.schema.ddl import apply_mapping
from worker.schema.writer import write_mapping
from worker.topics import dlq_topic, reverse_topic_for, topic_for

pytestmark = pytest.mark.integration


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_GROUP_ID": settings.group_id,
        "D1CDC_REVERSE_GROUP_ID": settings.reverse_group_id,
        "D1CDC_SOURCE_PATH": str(settings.source_path),
        "D1CDC_MAPPING_PATH": str(settings.mapping_path),
    }


def test_rollback_verdict_waits_for_reverse_group_dead_letters_and_watermarks(
    make_settings: Callable[..., Settings], tmp_path: Path, unique_name: str
) -> None:
    """Not safe without a reverse watermark, then while the reverse topic lags (the forward
    topic's lag does not count), then with a reverse dead letter; safe once all are done."""
    source, mapping = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute('CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, "updatedAt" INTEGER)')
    write_mapping(versioned_table("note", body="text"), mapping)
    settings = make_settings(
        source_path=source, mapping_path=mapping, reverse_group_id=f"{unique_name}-reverse"
    )
    prefix = settings.topic_prefix
    reverse, forward, dlq = (
        reverse_topic_for(prefix, "note"),
        topic_for(prefix, "note"),
        dlq_topic(prefix),
    )
    admin = admin_client(settings.kafka_bootstrap)
    new = [NewTopic(reverse, 2, 1), NewTopic(forward, 1, 1), NewTopic(dlq, 1, 1)]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)
    producer = Producer(producer_config(settings.kafka_bootstrap))
    for i in range(5):
        event = new_event("note", "upsert", {"id": f"n{i}"}, {"id": f"n{i}"}, ts_ms=100 + i)
        key, value = encode_event(event)
        producer.produce(reverse, key=key, value=value)
        producer.produce(forward, key=key, value=value)  # never applied here: not counted
    assert producer.flush(30) == 0
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)

    def reasons() -> list[str]:
        return rollback_safety(collect_status(settings, ["note"], engine, direction=REVERSE))

    def cli() -> tuple[int, dict[str, object]]:
        result = CliRunner().invoke(app, ["status", "--reverse", "--json"], env=cli_env(settings))
        body: dict[str, object] = json.loads(result.stdout)
        return result.exit_code, body

    first = reasons()
    assert any(r.startswith("reverse lag 5 (note=5)") for r in first)
    assert any("no reverse watermark for note" in r for r in first)
    reverse_watermarks(engine).save("note", Watermark("incremental", version=datetime(2026, 1, 1)))
    assert [r for r in reasons() if "watermark" in r] == []

    commit_to_end(settings, settings.reverse_group_id, reverse)
    status = collect_status(settings, ["note"], engine, direction=REVERSE)
    assert status.total_lag == 0
    assert status.tables[0].last_applied_ms == 104
    assert "incremental" in (status.tables[0].watermark or "")
    assert rollback_safety(status) == []
    code, body = cli()
    assert (code, body["safe"], body["total_lag"]) == (0, True, 0)
    text = CliRunner().invoke(app, ["status", "--reverse"], env=cli_env(settings))
    assert "rollback to D1: safe" in text.stdout

    # A forward dead letter is not the reverse side's; a D1 sink's one is.
    headers = headers_for("boom", forward, 0, 0, 1)
    producer.produce(dlq, key=b"k", value=b"forward poison", headers=headers)
    assert producer.flush(30) == 0
    assert reasons() == []
    headers = headers_for("SQLite refused the row", reverse, 1, 3, 1)
    producer.produce(dlq, key=b"k", value=b"reverse poison", headers=headers)
    assert producer.flush(30) == 0
    assert reasons() == ["1 dead-lettered reverse event(s) not replayed"]
    code, body = cli()
    assert (code, body["safe"], body["direction"]) == (1, False, "reverse")

    commit_to_end(settings, settings.group_id + DLQ_ACK_GROUP_SUFFIX, dlq)  # `dlq replay`
    assert reasons() == []

    # A MySQL write newer than the reverse watermark: not shipped yet, so not safe.
    note = versioned_table("note", body="text")
    apply_mapping(engine, note)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO note VALUES ('late', 'x', '2026-02-01 00:00:00')"))
    status = collect_status(settings, ["note"], engine, mapping=note, direction=REVERSE)
    assert rollback_safety(status) == [
        "MySQL holds rows the reverse poller has not shipped yet (note=1): with writes "
        "frozen, let `backfill --reverse` finish a pass"
    ]
    reverse_watermarks(engine).save("note", Watermark("incremental", version=datetime(2026, 2, 1)))
    status = collect_status(settings, ["note"], engine, mapping=note, direction=REVERSE)
    assert rollback_safety(status) == []
    engine.dispose()
