"""Unique collisions held back: per-key order, commit ceilings, retries, expiry, release."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from consumers.change import Change, MessageRef
from consumers.collisions import QUEUED, HeldCollisions


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def change(key: str, offset: int, partition: int = 0, **row: Any) -> Change:
    return Change(
        "user",
        "upsert",
        {"id": key},
        {"id": key, **row},
        b"v",
        offset,
        MessageRef("p.user", partition, offset, key.encode(), b"{}"),
    )


def make(retry_for_s: float = 10.0) -> tuple[HeldCollisions, Clock]:
    clock = Clock()
    return HeldCollisions(retry_for_s, retry_every_s=0.5, clock=clock), clock


def test_a_collision_is_retried_and_settled_when_it_applies() -> None:
    held, _ = make()
    b = change("B", 7, partition=1)
    held.settle([(b, "UniqueCollision: x")])
    assert held.ceilings() == {("p.user", 1): 7} and len(held) == 1
    retry, expired = held.due()
    assert retry == [b] and expired == []
    assert held.due() == ([], [])  # in flight, and not yet time again
    held.settle([])  # the retry applied
    assert len(held) == 0 and held.ceilings() == {}


def test_later_changes_of_a_held_key_queue_behind_it_in_order() -> None:
    held, clock = make()
    held.settle([(change("B", 7), "UniqueCollision: x")])
    later, other = change("B", 9), change("C", 10)
    assert held.queue_behind([later, other]) == [other]
    clock.now += 1
    retry, _ = held.due()
    assert [c.source.offset for c in retry] == [7, 9]  # stream order, for coalescing
    held.settle([(later, "UniqueCollision: y")])  # the coalesced winner collided again
    assert held.ceilings() == {("p.user", 0): 9}


def test_a_collision_that_outlasts_the_retry_time_becomes_one_dead_letter() -> None:
    held, clock = make(retry_for_s=10.0)
    b = change("B", 7)
    held.settle([(b, "UniqueCollision: user: value taken")])
    for _ in range(5):
        clock.now += 1
        retry, expired = held.due()
        assert retry == [b] and expired == []
        held.settle([(b, "UniqueCollision: user: value taken")])  # keeps its first time
    clock.now += 6
    retry, expired = held.due()
    assert retry == [] and [d.source.offset for d in expired] == [7]
    assert expired[0].reason.startswith("UniqueCollisionError: user: value taken (still so after")
    assert held.ceilings() == {("p.user", 0): 7}  # until its dead letter is flushed
    assert held.due() == ([], [])
    held.settle([])  # the batch carrying the dead letter is done
    assert len(held) == 0 and held.ceilings() == {}
    clock.now += 1
    assert held.due() == ([], [])  # dead-lettered exactly once


def test_a_failed_retry_batch_keeps_its_entries_held() -> None:
    held, clock = make()
    b = change("B", 7)
    held.settle([(b, "UniqueCollision: x")])
    assert held.due()[0] == [b]
    held.failed()  # MySQL went away during the retry
    clock.now += 1
    assert held.due()[0] == [b]


def test_queued_changes_carry_a_reason_and_released_partitions_are_forgotten() -> None:
    held, _ = make()
    held.settle([(change("B", 7), "UniqueCollision: x"), (change("D", 3, partition=2), "U: y")])
    held.queue_behind([change("B", 8)])
    assert held.ceilings() == {("p.user", 0): 7, ("p.user", 2): 3}
    held.release([TopicPartition("p.user", 0)])
    assert held.ceilings() == {("p.user", 2): 3}
    assert QUEUED.startswith("queued behind")
