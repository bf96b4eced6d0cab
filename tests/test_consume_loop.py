"""The consume loop against a real Kafka broker and MariaDB: P1-P4, commits, the DLQ."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.dlq import read_dead_letters
from consumers.loop import run_until_caught_up
from tests.consume_helpers import (
    MAPPING,
    create_topics,
    prepare_target,
    produce,
    produce_raw,
    rows,
    tag_event,
    user_event,
)
from worker.config import Settings
from worker.db import create_target_engine
from worker.envelope import encode_event, new_event
from worker.kafka import consumer_config
from worker.schema.mapping import mapping_from_dict

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    settings = make_settings(batch_size=50)
    create_topics(kafka_bootstrap, settings.topic_prefix, ["user", "tag"])
    prepare_target(settings.target_url.get_secret_value()).dispose()
    return settings


def _target(settings: Settings, table: str) -> dict[str, dict[str, Any]]:
    engine = prepare_target(settings.target_url.get_secret_value())
    try:
        return rows(engine, table)
    finally:
        engine.dispose()


def test_replay_from_offset_zero_into_empty_database_equals_source(settings: Settings) -> None:
    """P3: the last event of every key, consumed from the beginning, is the target."""
    history = [user_event(f"u{i % 40}", i) for i in range(200)]
    history += [user_event(f"u{i}", 200 + i, op="delete") for i in range(0, 40, 5)]
    history += [tag_event(f"t{i}", i, label=f"l{i}") for i in range(30)]
    produce(settings.kafka_bootstrap, settings.topic_prefix, history)
    outcome = run_until_caught_up(settings, MAPPING, timeout_s=90)
    assert outcome.caught_up and outcome.messages == len(history)
    users = _target(settings, "user")
    expected = {f"u{k}" for k in range(40)} - {f"u{k}" for k in range(0, 40, 5)}
    assert set(users) == expected
    assert all(users[f"u{k}"]["name"] == f"u{k}-v{160 + k}" for k in range(1, 40) if k % 5)
    assert {k: r["label"] for k, r in _target(settings, "tag").items()} == {
        f"t{i}": f"l{i}" for i in range(30)
    }


def test_duplicate_delivery_gives_the_same_state(settings: Settings) -> None:
    """P1: the same events produced twice (and consumed again) change nothing."""
    events = [user_event(f"u{i}", i) for i in range(30)] + [tag_event("t", 1)]
    produce(settings.kafka_bootstrap, settings.topic_prefix, events)
    run_until_caught_up(settings, MAPPING, timeout_s=90)
    once = _target(settings, "user"), _target(settings, "tag")
    produce(settings.kafka_bootstrap, settings.topic_prefix, events)
    run_until_caught_up(settings, MAPPING, timeout_s=90)
    assert (_target(settings, "user"), _target(settings, "tag")) == once


def test_shuffled_delivery_ends_in_the_in_order_state(settings: Settings) -> None:
    """P2: per-key shuffled events with distinct versions end as the in-order history."""
    rng = random.Random(7)
    history = []
    for version in range(1, 121):
        uid = f"u{rng.randrange(8)}"
        op = "delete" if rng.random() < 0.2 else "upsert"
        history.append(user_event(uid, version, op=op))  # type: ignore[arg-type]
    final: dict[str, str] = {}
    for event in history:
        if event.op == "delete":
            final.pop(event.key["id"], None)
        else:
            assert event.row is not None
            final[event.key["id"]] = event.row["name"]
    # A delete's before-image is the row it removes: the previous version of that key.
    history = _with_true_before_images(history)
    shuffled = history[:]
    rng.shuffle(shuffled)
    produce(settings.kafka_bootstrap, settings.topic_prefix, shuffled)
    run_until_caught_up(settings, MAPPING, timeout_s=90)
    assert {k: r["name"] for k, r in _target(settings, "user").items()} == final


def _with_true_before_images(history: list[Any]) -> list[Any]:
    last: dict[str, Any] = {}
    result = []
    for event in history:
        uid = event.key["id"]
        if event.op == "delete":
            if uid not in last:
                continue  # deleting a row that does not exist is not a source event
            result.append(
                new_event("user", "delete", {"id": uid}, last.pop(uid), ts_ms=event.ts_ms)
            )
        else:
            last[uid] = event.row
            result.append(event)
    return result


def test_poison_events_go_to_the_dlq_alone_and_offsets_are_committed(settings: Settings) -> None:
    """P4: bad JSON, unknown table, too-long string, boolean=2 → DLQ with reasons; rest applied."""
    prefix, bootstrap = settings.topic_prefix, settings.kafka_bootstrap
    good = [user_event(f"u{i}", i) for i in range(20)]
    produce(bootstrap, prefix, good[:10])
    produce_raw(bootstrap, f"{prefix}.user", b'{"id":"bad"}', b"{not json")
    stray = new_event("nope", "upsert", {"id": "x"}, {"id": "x"}, ts_ms=1)
    produce_raw(bootstrap, f"{prefix}.user", *encode_event(stray))
    produce(bootstrap, prefix, [user_event("long", 1, name="n", email="x" * 101)])
    produce(bootstrap, prefix, [user_event("bool", 1, active=2)])
    produce_raw(bootstrap, f"{prefix}.user", b'{"id":"u0"}', None)  # a tombstone: skipped
    produce(bootstrap, prefix, good[10:])
    outcome = run_until_caught_up(settings, MAPPING, timeout_s=90)
    assert outcome.dead_letters == 4
    assert set(_target(settings, "user")) == {f"u{i}" for i in range(20)}
    letters = read_dead_letters(bootstrap, f"{prefix}._dlq")
    reasons = sorted(letter.reason.split(":")[0] for letter in letters)
    assert reasons == ["ConversionError", "ConversionError", "EnvelopeError", "UnknownTableError"]
    assert {letter.value for letter in letters} >= {b"{not json"}
    assert all(letter.topic == f"{prefix}.user" and letter.offset >= 0 for letter in letters)
    assert any("string(100)" in letter.reason for letter in letters)
    assert any("boolean" in letter.reason for letter in letters)
    assert _committed_lag(settings) == 0


def _committed_lag(settings: Settings) -> int:
    consumer = Consumer(consumer_config(settings.kafka_bootstrap, settings.group_id))
    try:
        lag = 0
        for table in ("user", "tag"):
            topic = f"{settings.topic_prefix}.{table}"
            parts = [TopicPartition(topic, p) for p in range(3)]
            for tp in consumer.committed(parts, timeout=10):
                high = consumer.get_watermark_offsets(tp, timeout=10)[1]
                lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def test_dlq_list_and_replay_resubmit_after_a_fix(settings: Settings, tmp_path: Any) -> None:
    """`dlq list --json` shows the entry; `dlq replay` re-applies it once the cause is fixed."""
    from typer.testing import CliRunner

    from worker.cli.main import app

    prefix, bootstrap = settings.topic_prefix, settings.kafka_bootstrap
    produce(bootstrap, prefix, [tag_event("late", 1, label="needs-table")])
    produce_raw(
        bootstrap,
        f"{prefix}.tag",
        *encode_event(new_event("tag", "upsert", {"id": "z"}, {"id": "z", "extra": 1}, ts_ms=5)),
    )
    run_until_caught_up(settings, MAPPING, timeout_s=90)
    env = {
        "D1CDC_KAFKA_BOOTSTRAP": bootstrap,
        "D1CDC_TOPIC_PREFIX": prefix,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
    }
    listed = CliRunner().invoke(app, ["dlq", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.stdout)
    assert len(entries) == 1 and "unknown column" in entries[0]["reason"]
    # The fix: the column is added to the mapping and the target.
    fixed = mapping_from_dict(
        {
            "tables": {
                "tag": {
                    "primary_key": ["id"],
                    "columns": {
                        "id": {"type": "string(20)"},
                        "label": {"type": "text"},
                        "extra": {"type": "bigint"},
                    },
                }
            }
        }
    )
    engine = create_target_engine(settings.target_url.get_secret_value())
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE `tag` ADD COLUMN `extra` BIGINT NULL")
    engine.dispose()
    replayed = CliRunner().invoke(
        app, ["dlq", "replay", "--table", "tag", "--no-check-source"], env=env
    )
    assert replayed.exit_code == 0, replayed.output
    outcome = run_until_caught_up(settings, fixed, timeout_s=90)
    assert outcome.dead_letters == 0
    assert _target(settings, "tag")["z"]["extra"] == 1
