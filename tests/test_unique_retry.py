"""A cross-partition unique collision is retried, not dead-lettered; a lasting one is, once.

The app moves an email from key A to key B. A's update and B's insert are on different
partitions, and B's insert may reach MySQL first: its email still belongs to A. Real
Kafka, real MariaDB, the real consume loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from consumers.dlq import read_dead_letters
from consumers.loop import ConsumeLoop, run_until_caught_up
from consumers.offsets import group_progress
from tests.consume_helpers import (
    MAPPING,
    create_topics,
    prepare_target,
    produce,
    rows,
    user_event,
    wait_for,
)
from worker.config import Settings
from worker.kafka import admin_client

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    settings = make_settings(batch_size=50, consumer_unique_retry_s=60)
    create_topics(kafka_bootstrap, settings.topic_prefix, ["user", "tag"])
    prepare_target(settings.target_url.get_secret_value()).dispose()
    return settings


def _emails(settings: Settings) -> dict[str, str]:
    engine = prepare_target(settings.target_url.get_secret_value())
    try:
        return {k: r["email"] for k, r in rows(engine, "user").items()}
    finally:
        engine.dispose()


def test_an_insert_ahead_of_the_update_freeing_its_email_is_applied_when_freed(
    settings: Settings,
) -> None:
    prefix, bootstrap = settings.topic_prefix, settings.kafka_bootstrap
    produce(bootstrap, prefix, [user_event("a", 1, email="moved@example.com")])
    run_until_caught_up(settings, MAPPING, timeout_s=60)

    loop = ConsumeLoop(settings, MAPPING)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        # B arrives first: its email is still A's. Held, retried, not dead-lettered.
        produce(bootstrap, prefix, [user_event("b", 2, email="moved@example.com")])
        wait_for(lambda: len(loop.held) == 1, 30, "the collision to be held")
        produce(bootstrap, prefix, [user_event("b", 3, email="moved@example.com", name="B2")])
        # Queued behind B's first change, then coalesced with it on the next retry: either
        # way B's newer change is what is held, and it has not reached MySQL.
        wait_for(
            lambda: any(c.row and c.row["name"] == "B2" for c in loop.held.changes()),
            30,
            "B's next change to queue behind it",
        )
        assert "b" not in _emails(settings)
        produce(bootstrap, prefix, [user_event("a", 4, email="a@example.com")])  # frees it
        wait_for(lambda: _emails(settings).get("b") == "moved@example.com", 30, "B applied")
        wait_for(lambda: len(loop.held) == 0, 10, "nothing held")
        wait_for(lambda: _lag(settings) == 0, 30, "the group to commit everything")
    finally:
        loop.stop()
        runner.join(30)
        loop.engine.dispose()
    assert not runner.is_alive()
    assert _emails(settings) == {"a": "a@example.com", "b": "moved@example.com"}
    engine = prepare_target(settings.target_url.get_secret_value())
    try:
        assert rows(engine, "user")["b"]["name"] == "B2"  # the queued change, in order
    finally:
        engine.dispose()
    assert read_dead_letters(bootstrap, f"{prefix}._dlq") == []


def test_a_lasting_collision_is_dead_lettered_once_after_the_retry_time(
    make_settings: Callable[..., Settings], settings: Settings
) -> None:
    quick = make_settings(batch_size=50, consumer_unique_retry_s=2)
    prefix, bootstrap = quick.topic_prefix, quick.kafka_bootstrap
    produce(bootstrap, prefix, [user_event("a", 1, email="taken@example.com")])
    run_until_caught_up(quick, MAPPING, timeout_s=60)
    produce(bootstrap, prefix, [user_event("c", 2, email="taken@example.com")])
    produce(bootstrap, prefix, [user_event(f"u{i}", 3) for i in range(10)])
    outcome = run_until_caught_up(quick, MAPPING, timeout_s=60)
    assert outcome.caught_up and outcome.dead_letters == 1
    letters = read_dead_letters(bootstrap, f"{prefix}._dlq")
    assert [(letter.key, letter.reason.split(":")[0]) for letter in letters] == [
        (b'{"id":"c"}', "UniqueCollisionError")
    ]
    assert "still so after 2 s of retries" in letters[0].reason
    emails = _emails(quick)
    assert emails["a"] == "taken@example.com" and "c" not in emails and len(emails) == 11


def _lag(settings: Settings) -> int:
    topics = [f"{settings.topic_prefix}.user", f"{settings.topic_prefix}.tag"]
    admin = admin_client(settings.kafka_bootstrap)
    return group_progress(admin, settings.group_id, topics).total_lag
