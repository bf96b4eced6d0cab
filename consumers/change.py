"""A decoded, converted change and the rule deciding which of two changes wins. Pure.

The rule (`supersedes`) is the one every layer applies — coalescing inside a batch, the
side-table check against tombstones, and the SQL guards — so a batch applied at once equals
its events applied one by one (tested by property in tests/test_coalesce_properties.py):

- upsert over upsert, delete over upsert: the incoming change wins when its version is
  **greater or equal** (tie → the incoming event applies: equal versions carry the same
  content, so P1 holds either way);
- upsert over delete: only a **strictly** newer version wins. A delete's version is its
  before-image's version, i.e. the version of the row it removed; an upsert of that same
  version is the deleted row itself and must not resurrect it;
- a delete without a before-image has no row version: it always wins over an upsert at its
  position in the stream (the producer emits it after the write it deletes), and against it
  an upsert wins only with a strictly greater `ts_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from worker.envelope import Op, blob_to_wire, canonical_json
from worker.errors import EventError, reason_of


class MessageRef(NamedTuple):
    """Where an event came from, enough to dead-letter or replay it byte for byte.

    A named tuple, not a frozen dataclass: one is built per message, and this way costs a
    third as much (measured).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0


@dataclass(slots=True)
class Change:
    """One event after decoding and conversion: MySQL-ready values. Never changed once built.

    Not a frozen dataclass, and `identity` computed here rather than a `cached_property`:
    one is built per event, and a frozen one cost 3.0 µs to build (an `object.__setattr__`
    per field) and 3.2 µs more for its first `identity` (the property's lock), 2.1 µs both
    together now (`timeit`).
    """

    table: str
    op: Op
    key: dict[str, Any]  # converted primary-key columns
    row: dict[str, Any] | None  # converted row (upserts only)
    version: bytes | None  # encoded version; None only for a delete without before-image
    ts_ms: int
    source: MessageRef
    version_values: tuple[Any, ...] | None = None  # the raw version tuple, for SQL guards
    backfill: bool = False  # origin "backfill": a snapshot read, which loses version ties
    # (table, canonical key): what coalescing and the side table key on.
    identity: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.identity = self.table, key_identity(self.key)


@dataclass(frozen=True)
class StoredState:
    """What the target remembers about a key outside the row itself (side table)."""

    op: Op  # "delete" = a tombstone
    version: bytes | None
    ts_ms: int


@dataclass(frozen=True)
class DeadLetter:
    source: MessageRef
    reason: str  # `worker.dead_letters.reason_of` its error: one shape for `dlq list`

    @classmethod
    def of(cls, source: MessageRef, error: EventError) -> DeadLetter:
        return cls(source, reason_of(error))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return blob_to_wire(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def key_identity(key: dict[str, Any]) -> str:
    """The identity of a row: the canonical JSON of its key's *converted* values (those
    MySQL stores), what coalescing and the side table key on. ASCII-escaped, unlike the
    message key: it is stored (the side table's `pk_json` and `pk_hash`), and another
    escaping would give every non-ASCII key a new identity after an upgrade, its tombstone
    and version out of reach of the guards."""
    if len(key) == 1:  # the common case, 3x faster than the general encoder below
        ((name, value),) = key.items()
        # What json.dumps itself calls for a str (ensure_ascii), and for an int.
        if type(value) is str:
            return "{" + encode_basestring_ascii(name) + ":" + encode_basestring_ascii(value) + "}"
        if type(value) is int:
            return "{" + encode_basestring_ascii(name) + ":" + int.__repr__(value) + "}"
    return canonical_json(key, default=_json_default, ensure_ascii=True)


def supersedes(incoming: Change | StoredState, current: Change | StoredState) -> bool:
    """Does `incoming` (later in the stream) replace `current` for the same key?

    Row versions order the writes of one *incarnation* of a row. A delete ends the
    incarnation, and a re-insert starts a new one whose version may equal the deleted
    row's (Drizzle's `updatedAt` is in seconds) or be lower (its `updateCounter` restarts).
    So deletes are ordered against other deletes, and upserts against a delete, by source
    time (`ts_ms`: when the write committed, or when backfill or verify read the row):
    - a tombstone keeps the latest delete; a delete not later than it (the same delete
      redelivered, or an older one) is stale: it must not remove a re-inserted row;
    - an upsert after a delete applies only when the source saw it after the delete (a
      re-insert, even within the same second); a replay of the deleted row was written or
      read before the delete, so it never resurrects it.
    Everything else compares versions, equal versions letting the later event win, except
    that a backfill snapshot loses a tie to any other write.
    """
    if incoming.op == "delete":
        if current.op == "delete":  # the same ts_ms is the same delete, delivered again
            return incoming.ts_ms > current.ts_ms
        if incoming.version is None or current.version is None:
            return True
        return incoming.version >= current.version
    if current.op == "delete":
        return incoming.ts_ms > current.ts_ms
    if incoming.version is None or current.version is None:  # upserts always carry one
        return incoming.ts_ms >= current.ts_ms
    if _loses_ties(incoming, current):
        return incoming.version > current.version
    return incoming.version >= current.version


def _loses_ties(incoming: Change | StoredState, current: Change | StoredState) -> bool:
    """A backfill snapshot never replaces a captured, app or fix write at an equal version:
    a raw SQL update keeps the version and changes the content, and a snapshot read before
    it may arrive after it."""
    return getattr(incoming, "backfill", False) and not getattr(current, "backfill", False)
