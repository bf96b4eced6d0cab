"""Property: whatever bytes arrive, every message is applied or dead-lettered exactly once.

Two levels (issue 11, defect 1):
- pure, many examples: arbitrary bytes, arbitrary JSON and mutated envelopes through the
  real decoder and the real dead-letter encoding, which must never raise;
- integration, one drawn history: the same kinds of messages through the real consume loop
  on Kafka and MariaDB, which must catch up, commit everything and dead-letter each bad
  message once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.change import DeadLetter, MessageRef
from consumers.decode import decode_batch, to_change
from consumers.dlq import dead_letter_headers, read_dead_letters
from consumers.loop import run_until_caught_up
from tests.consume_helpers import MAPPING, create_topics, prepare_target, produce_raw
from worker.config import Settings
from worker.dead_letters import fit_for_dlq
from worker.envelope import encode_event, new_event

TOPIC = "p.user"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_GOOD = {"id": "u1", "email": "a@b.c", "name": "n", "active": 1, "updatedAt": 1_760_000_000_000}


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A valid `user` envelope with one field, key, column or value replaced by anything."""
    body: dict[str, Any] = json.loads(
        encode_event(new_event("user", "upsert", {"id": "u1"}, _GOOD, ts_ms=1))[1]
    )
    where = draw(st.sampled_from(["field", "row-value", "row-name", "key", "drop"]))
    if where == "field":
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif where == "row-value":
        body["row"][draw(st.sampled_from(sorted(_GOOD)))] = draw(json_values)
    elif where == "row-name":
        body["row"][draw(st.text(max_size=10))] = draw(json_values)
    elif where == "key":
        body["key"] = draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3))
    else:
        body.pop(draw(st.sampled_from(sorted(body))))
    text = json.dumps(body)
    if draw(st.booleans()):  # raw JSON no encoder writes: deep nesting, huge numbers, surrogates
        text = text.replace(
            '"n"', draw(st.sampled_from(['"\\ud800"', "1" * 5000, "[" * 2000 + "]" * 2000])), 1
        )
    return text.encode()


messages = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    envelopes(),
    st.just(encode_event(new_event("user", "upsert", {"id": "u1"}, _GOOD, ts_ms=1))[1]),
    st.none(),  # a compaction tombstone
)


@given(st.lists(messages, min_size=1, max_size=20))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_decoding_never_raises_and_accounts_for_every_message(values: list[bytes | None]) -> None:
    refs = [MessageRef(TOPIC, 0, i, b"k", v) for i, v in enumerate(values)]
    batch = decode_batch(refs, MAPPING)
    seen = [c.source.offset for c in batch.changes] + [d.source.offset for d in batch.dead]
    assert sorted(seen) == [r.offset for r in refs if r.value is not None]
    assert batch.skipped == sum(1 for v in values if v is None)
    for letter in batch.dead:
        headers = dead_letter_headers(letter)
        key, value, stored = fit_for_dlq(letter.source.key, letter.source.value, headers)
        assert all(isinstance(h, bytes) for _, h in stored)
        assert value == letter.source.value and key == letter.source.key  # small: kept whole


def test_a_reason_that_utf8_cannot_hold_is_escaped_not_fatal() -> None:
    letter = DeadLetter(MessageRef(TOPIC, 0, 0, b"k", b"v"), "unknown column 'no\ud800te'")
    reason = dict(dead_letter_headers(letter))["d1cdc.reason"]
    assert reason == b"unknown column 'no\\ud800te'"


@pytest.mark.integration
@given(values=st.lists(messages, min_size=60, max_size=60))
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_consume_loop_applies_or_dead_letters_each_drawn_message_once(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, values: list[bytes | None]
) -> None:
    settings = make_settings(batch_size=7)
    create_topics(kafka_bootstrap, settings.topic_prefix, ["user", "tag"], partitions=1)
    prepare_target(settings.target_url.get_secret_value()).dispose()
    topic = f"{settings.topic_prefix}.user"
    for value in values:
        produce_raw(kafka_bootstrap, topic, b'{"id":"u1"}', value)
    outcome = run_until_caught_up(settings, MAPPING, timeout_s=120)
    assert outcome.caught_up and outcome.messages == len(values)
    letters = read_dead_letters(kafka_bootstrap, f"{settings.topic_prefix}._dlq")
    dead = [letter.offset for letter in letters]
    assert len(dead) == len(set(dead)), "a message was dead-lettered twice"
    for offset, value in enumerate(values):
        if offset in dead or value is None:
            continue
        to_change(MessageRef(topic, 0, offset, b'{"id":"u1"}', value), MAPPING)  # valid
    assert outcome.dead_letters == len(dead)
