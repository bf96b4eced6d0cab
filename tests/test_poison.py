"""P4 under hostile input: no single message stops the consumer (issue 11, defect 1).

Each hostile message below raised something other than an `EventError` on the old code, and
the loop died for every partition it owned, before committing the good events behind it.
Now every message is applied or dead-lettered exactly once, the reason can always be
encoded into a header, and the loop runs on. Real Kafka and MariaDB.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from consumers.dlq import read_dead_letters
from consumers.loop import run_until_caught_up
from tests.consume_helpers import create_topics, prepare_target
from worker.config import Settings
from worker.dead_letters import ORIGINAL_SHA256, ORIGINAL_SIZE
from worker.envelope import encode_event, new_event
from worker.kafka import admin_client, producer_config
from worker.schema.mapping import mapping_from_dict

pytestmark = pytest.mark.integration

MAPPING = mapping_from_dict(
    {
        "tables": {
            "doc": {
                "primary_key": ["id"],
                "version_columns": ["updatedAt"],
                "columns": {
                    "id": {"type": "string(40)", "nullable": False},
                    "body": {"type": "json"},
                    "n": {"type": "bigint"},
                    "note": {"type": "text"},
                    "updatedAt": {"type": "timestamp_ms", "nullable": False},
                },
            }
        }
    }
)
BIG = 20 * 1024 * 1024  # a test-only topic limit, above d1cdc's own


def envelope(doc_id: str, **row: Any) -> bytes:
    full = {"id": doc_id, "body": "{}", "n": 1, "note": "ok", "updatedAt": 1_760_000_000_000}
    return encode_event(new_event("doc", "upsert", {"id": doc_id}, full | row, ts_ms=1))[1]


def with_raw(doc_id: str, column: str, raw: bytes) -> bytes:
    """An envelope whose `column` value is the raw JSON text `raw` (no encoder would write it)."""
    marker = "@@RAW@@"
    return envelope(doc_id, **{column: marker}).replace(json.dumps(marker).encode(), raw)


def key_of(doc_id: str) -> bytes:
    return b'{"id":"' + doc_id.encode() + b'"}'


def hostile_messages() -> dict[str, bytes]:
    deep = b"[" * 3000 + b"]" * 3000
    return {
        # a JSON column nested 3,000 deep: RecursionError when the value is parsed
        "deep-json-column": envelope("deep1", body=deep.decode()),
        # the envelope itself nested 3,000 deep: RecursionError in the envelope parser
        "deep-envelope": with_raw("deep2", "note", deep),
        # a 5,000-digit integer: ValueError (Python's int-digits limit)
        "huge-int": with_raw("huge", "n", b"7" * 5000),
        # a column *name* with an unpaired surrogate: the reason cannot be UTF-8 encoded
        "surrogate-column": envelope("sur1").replace(b'"note"', b'"no\\ud800te"'),
        # a key *value* with an unpaired surrogate: utf8mb4 cannot store it
        "surrogate-key": envelope("x").replace(b'"x"', b'"s\\udfffx"'),
        # an envelope filed under another Kafka key (it would race that key's events)
        "wrong-key": envelope("right"),
        # a 17 MB value over MariaDB's max_allowed_packet (16 MB), and over the DLQ's limit
        "over-max-packet": envelope("packet", note="p" * (17 * 1024 * 1024)),
    }


@pytest.fixture
def settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    settings = make_settings(batch_size=50)
    create_topics(kafka_bootstrap, settings.topic_prefix, ["doc"], partitions=1)

    admin = admin_client(kafka_bootstrap)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        f"{settings.topic_prefix}.doc",
        set_config={"max.message.bytes": str(BIG)},
    )
    for future in admin.alter_configs([resource]).values():
        future.result(timeout=30)
    prepare_target(settings.target_url.get_secret_value(), MAPPING).dispose()
    return settings


def test_hostile_messages_are_dead_lettered_once_and_the_rest_applied(settings: Settings) -> None:
    topic = f"{settings.topic_prefix}.doc"
    producer = Producer(producer_config(settings.kafka_bootstrap, **{"message.max.bytes": BIG}))
    hostile = hostile_messages()
    sent: dict[int, str] = {}  # offset → what it was
    good = [f"good{i}" for i in range(10)]

    def produce(key: bytes, value: bytes, what: str) -> None:
        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            sent[msg.offset()] = what

        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.flush(60)

    keys = {
        "deep-json-column": key_of("deep1"),
        "deep-envelope": key_of("deep2"),
        "huge-int": key_of("huge"),
        "surrogate-column": key_of("sur1"),
        "surrogate-key": key_of("s\\udfffx"),
        "wrong-key": key_of("wrong"),
        "over-max-packet": key_of("packet"),
    }
    for i, doc_id in enumerate(good[:5]):
        produce(key_of(doc_id), envelope(doc_id, n=i), doc_id)
    for what, value in hostile.items():
        produce(keys[what], value, what)
    for i, doc_id in enumerate(good[5:], start=5):
        produce(key_of(doc_id), envelope(doc_id, n=i), doc_id)

    outcome = run_until_caught_up(settings, MAPPING, timeout_s=120)
    assert outcome.caught_up

    engine = sa.create_engine(settings.target_url.get_secret_value())
    with engine.connect() as conn:
        applied = set(conn.exec_driver_sql("SELECT id FROM doc").scalars())
    engine.dispose()
    assert applied == set(good)

    letters = read_dead_letters(settings.kafka_bootstrap, f"{settings.topic_prefix}._dlq")
    by_what = {sent[letter.offset]: letter for letter in letters}
    assert len(letters) == len(by_what) == len(hostile), [sent[x.offset] for x in letters]
    assert set(by_what) == set(hostile)
    assert "RecursionError" in by_what["deep-json-column"].reason
    assert "recursion depth" in by_what["deep-envelope"].reason
    assert "digits" in by_what["huge-int"].reason
    assert "\\ud800" in by_what["surrogate-column"].reason
    assert "surrogate" in by_what["surrogate-key"].reason
    assert "is not the envelope's key" in by_what["wrong-key"].reason
    packet = by_what["over-max-packet"]
    assert "max_allowed_packet" in packet.reason
    # Too big for the DLQ: stored truncated, with the original's size and hash.
    original = hostile["over-max-packet"]
    assert packet.value is not None and len(packet.value) < len(original)
    assert original.startswith(packet.value)
    assert packet.headers[ORIGINAL_SIZE] == str(len(original))
    assert packet.headers[ORIGINAL_SHA256] == hashlib.sha256(original).hexdigest()
    assert outcome.dead_letters == len(hostile)
