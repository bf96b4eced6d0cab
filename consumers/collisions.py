"""Upserts held back by a secondary UNIQUE collision, retried for a while before they are
dead-lettered.

Why a retry: the value may be about to be freed by a write on another partition. The
app moves an email from key A to key B: A's update and B's insert are on different
partitions, and B's may be applied first. Dead-lettering B at once turned a routine
reordering into a manual `dlq replay`. Now B is held and retried every `retry_every_s`;
only a collision that outlasts `retry_for_s` becomes a dead letter.

What keeps the guarantees:
- Per-key order: a later change of a key that is held queues behind it (never applied
  ahead of it, so an equal-version tie cannot let the older change win afterwards).
- Nothing is lost on a crash: `ceilings()` caps each partition's commit at the first held
  event's offset, so a restarted or new owner reads it again (P1/P2 make the rest of the
  redelivery harmless).
- A partition that is revoked or lost forgets its held changes for the same reason.
- A retry batch's outcome settles exactly the entries it carried (one batch in flight).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import TopicPartition

from consumers.change import Change, DeadLetter
from consumers.offsets import Partition
from consumers.unique import COLLISION_PREFIX
from worker.errors import UniqueCollisionError

QUEUED = "queued behind a held change of the same key"


@dataclass
class _Held:
    change: Change
    reason: str
    since: float
    in_flight: bool = False


def _ref(change: Change) -> tuple[str, int, int]:
    return change.source.topic, change.source.partition, change.source.offset


class HeldCollisions:
    def __init__(
        self,
        retry_for_s: float,
        *,
        retry_every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_for_s = retry_for_s
        self.retry_every_s = retry_every_s
        self._clock = clock
        self._entries: dict[tuple[str, int, int], _Held] = {}  # in stream order per key
        self._next_retry = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def changes(self) -> list[Change]:
        """The held changes, in stream order per key (for status and tests)."""
        return [entry.change for entry in self._entries.values()]

    def ceilings(self) -> dict[Partition, int]:
        """Per partition, the offset a commit must not pass (the first held event)."""
        lowest: dict[Partition, int] = {}
        for topic, partition, offset in self._entries:
            key = (topic, partition)
            lowest[key] = min(lowest.get(key, offset), offset)
        return lowest

    def queue_behind(self, changes: Iterable[Change]) -> list[Change]:
        """The changes free to apply now; those of a held key join the queue instead."""
        changes = list(changes)
        if not self._entries:
            return changes
        held = {entry.change.identity for entry in self._entries.values()}
        now = self._clock()
        passing = []
        for change in changes:
            if change.identity in held:
                self._entries.setdefault(_ref(change), _Held(change, QUEUED, now))
            else:
                passing.append(change)
        return passing

    def due(self) -> tuple[list[Change], list[DeadLetter]]:
        """(changes to retry now, in stream order; dead letters of expired ones)."""
        now = self._clock()
        if not self._entries or now < self._next_retry:
            return [], []
        self._next_retry = now + self.retry_every_s
        retry: list[Change] = []
        expired: list[DeadLetter] = []
        for entry in self._entries.values():
            if entry.in_flight:
                continue
            entry.in_flight = True  # held (a ceiling) until its batch is done
            if now - entry.since >= self.retry_for_s:
                still = UniqueCollisionError(
                    f"{entry.reason.removeprefix(COLLISION_PREFIX)} (still so after "
                    f"{self.retry_for_s:g} s of retries; free the value or change the row, "
                    "then `d1cdc dlq replay`)"
                )
                expired.append(DeadLetter.of(entry.change.source, still))
                continue
            retry.append(entry.change)
        return retry, expired

    def settle(self, collisions: Iterable[tuple[Change, str]]) -> None:
        """A batch applied: its retried entries are done unless they collided again, its
        expired ones are dead-lettered (only now may a commit pass them), its fresh
        collisions are held from now."""
        again = {_ref(change): (change, reason) for change, reason in collisions}
        now = self._clock()
        for ref, entry in list(self._entries.items()):
            if entry.in_flight:
                if ref in again:
                    entry.in_flight, entry.reason = False, again.pop(ref)[1]
                else:
                    del self._entries[ref]
        for ref, (change, reason) in again.items():
            if ref in self._entries:
                self._entries[ref].reason = reason
            else:
                self._entries[ref] = _Held(change, reason, now)

    def failed(self) -> None:
        """The batch in flight failed (MySQL away): its retried entries are held again."""
        for entry in self._entries.values():
            entry.in_flight = False

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for ref in [r for r in self._entries if (r[0], r[1]) in gone]:
            del self._entries[ref]
