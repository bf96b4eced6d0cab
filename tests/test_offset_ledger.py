"""The offset ledger: asynchronous commits, retried until acknowledged, never blocking."""

from __future__ import annotations

from types import SimpleNamespace

from confluent_kafka import KafkaError, TopicPartition

from consumers.change import MessageRef
from consumers.ledger import OffsetLedger


class FakeConsumer:
    """Records async commits; `answer()` plays librdkafka's on_commit for the last one."""

    def __init__(self, ledger: OffsetLedger) -> None:
        self.ledger = ledger
        self.sent: list[list[tuple[str, int, int]]] = []
        self.polls = 0
        self.answer_on_poll: KafkaError | bool | None = False  # False: never answer

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is True  # a synchronous commit blocks during an outage
        self.sent.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])

    def answer(self, error: KafkaError | None = None, per_partition: bool = False) -> None:
        if per_partition and error is not None:  # librdkafka's per-partition error
            failed = [
                SimpleNamespace(topic=t, partition=p, offset=o, error=error)
                for t, p, o in self.sent[-1]
            ]
            self.ledger.on_commit(None, failed)  # type: ignore[arg-type]
            return
        self.ledger.on_commit(error, [TopicPartition(t, p, o) for t, p, o in self.sent[-1]])

    def poll(self, timeout: float) -> None:
        self.polls += 1
        if self.answer_on_poll is not False and self.polls == 2:
            self.answer(self.answer_on_poll or None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ref(offset: int, partition: int = 0) -> MessageRef:
    return MessageRef("p.user", partition, offset, b"k", b"v")


def make() -> tuple[OffsetLedger, FakeConsumer, Clock]:
    clock = Clock()
    ledger = OffsetLedger(resend_after_s=10.0, clock=clock)
    return ledger, FakeConsumer(ledger), clock


def test_commit_sends_the_next_offset_per_partition_and_clears_on_ack() -> None:
    ledger, consumer, _ = make()
    ledger.applied([ref(4), ref(2), ref(9, partition=1)])
    assert ledger.commit(consumer) == {"p.user[0]": 5, "p.user[1]": 10}
    assert ledger.pending == {("p.user", 0): 5, ("p.user", 1): 10}  # not acknowledged yet
    consumer.answer()
    assert ledger.pending == {} and ledger.in_flight == 0
    assert ledger.commit(consumer) == {} and len(consumer.sent) == 1


def test_an_offset_in_flight_is_not_sent_again_until_it_is_answered_or_old() -> None:
    ledger, consumer, clock = make()
    ledger.applied([ref(4)])
    ledger.commit(consumer)
    assert ledger.commit(consumer) == {}  # idle polls do not pile up commits
    clock.now += 11
    assert ledger.commit(consumer) == {"p.user[0]": 5}  # no answer for too long: again
    ledger.applied([ref(7)])
    assert ledger.commit(consumer) == {"p.user[0]": 8}  # a newer offset goes at once


def test_a_failed_commit_stays_pending_and_is_retried_merged_with_newer_offsets() -> None:
    ledger, consumer, _ = make()
    ledger.applied([ref(4), ref(9, partition=1)])
    ledger.commit(consumer)
    consumer.answer(KafkaError(KafkaError.ILLEGAL_GENERATION))
    assert ledger.pending == {("p.user", 0): 5, ("p.user", 1): 10}
    ledger.applied([ref(5)])
    assert ledger.commit(consumer) == {"p.user[0]": 6, "p.user[1]": 10}
    consumer.answer(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), per_partition=True)
    assert ledger.commit(consumer) == {"p.user[0]": 6, "p.user[1]": 10}
    consumer.answer()
    assert ledger.pending == {}


def test_an_answer_for_an_older_offset_does_not_clear_a_newer_one() -> None:
    ledger, consumer, _ = make()
    ledger.applied([ref(4)])
    ledger.commit(consumer)
    ledger.applied([ref(8)])
    ledger.on_commit(None, [TopicPartition("p.user", 0, 5)])  # the answer to the first
    assert ledger.pending == {("p.user", 0): 9}
    assert ledger.commit(consumer) == {"p.user[0]": 9}


def test_ceilings_cap_the_commit_and_an_acknowledged_cap_is_not_resent() -> None:
    """A held collision at offset 3 keeps the commit at 3 until it is settled."""
    ledger, consumer, _ = make()
    ledger.applied([ref(2), ref(3), ref(6)])
    assert ledger.commit(consumer, ceilings={("p.user", 0): 3}) == {"p.user[0]": 3}
    consumer.answer()
    assert ledger.pending == {("p.user", 0): 7}  # still owed beyond the cap
    assert ledger.commit(consumer, ceilings={("p.user", 0): 3}) == {}
    assert ledger.commit(consumer) == {"p.user[0]": 7}  # the collision applied: the rest


def test_released_partitions_are_never_committed_by_us() -> None:
    ledger, consumer, _ = make()
    ledger.applied([ref(4), ref(1, partition=1)])
    ledger.release([TopicPartition("p.user", 0)])
    assert ledger.commit(consumer) == {"p.user[1]": 2}


def test_drain_waits_for_the_answer_but_never_longer_than_its_bound() -> None:
    ledger, consumer, clock = make()
    ledger.applied([ref(4)])
    consumer.answer_on_poll = None  # the broker answers on the second poll
    assert ledger.drain(consumer, timeout_s=5.0) is True and ledger.pending == {}

    ledger, consumer, clock = make()
    ledger.applied([ref(4)])

    def poll(timeout: float) -> None:  # the broker is gone: no answer, time passes
        clock.now += timeout

    consumer.poll = poll  # type: ignore[method-assign]
    assert ledger.drain(consumer, timeout_s=2.0) is False
    assert clock.now - 100.0 <= 2.1  # bounded: a shutdown never hangs on a commit
