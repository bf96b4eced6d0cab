"""The event contract v1: pure encode/decode, shared by producers and consumers.

Key: the primary key as canonical JSON (sorted keys, no spaces). Value: a UTF-8 JSON
object with `v, table, op, key, row, ts_ms, event_id, origin`. Blobs travel as
`{"$base64": "…"}`; integers above 2^53 as decimal strings (JavaScript cannot hold them).
The JSON Schema of the same contract is `worker/envelope.schema.json`, for shims in other
languages. Decoding is strict: anything off-contract raises `EnvelopeError` with a reason.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import orjson
from uuid6 import uuid7

from worker.errors import EnvelopeError

ENVELOPE_VERSION = 1
Op = Literal["upsert", "delete"]
MAX_SAFE_INTEGER = 2**53 - 1
# JSON scalars pass through `from_wire` unchanged; skipping the call is the decode hot path.
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})
_FIELDS = frozenset({"v", "table", "op", "key", "row", "ts_ms", "event_id", "origin"})


@dataclass(frozen=True)
class ChangeEvent:
    table: str
    op: Op
    key: dict[str, Any]
    row: dict[str, Any] | None
    ts_ms: int
    event_id: str
    origin: str = "app"


def new_event(
    table: str,
    op: Op,
    key: Mapping[str, Any],
    row: Mapping[str, Any] | None,
    *,
    origin: str = "app",
    ts_ms: int | None = None,
) -> ChangeEvent:
    """A fresh event with a UUIDv7 id and the producer's clock."""
    return ChangeEvent(
        table=table,
        op=op,
        key=dict(key),
        row=dict(row) if row is not None else None,
        ts_ms=ts_ms if ts_ms is not None else time.time_ns() // 1_000_000,
        event_id=str(uuid7()),
        origin=origin,
    )


def blob_to_wire(value: bytes | bytearray | memoryview) -> dict[str, str]:
    """Bytes in JSON: `{"$base64": …}` (events, watermarks, keys: one codec)."""
    return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}


def blob_from_wire(value: Mapping[str, Any]) -> bytes:
    """Inverse of `blob_to_wire`; anything else is an `EnvelopeError` (validated base64)."""
    if set(value) == {"$base64"} and isinstance(value["$base64"], str):
        try:
            return base64.b64decode(value["$base64"], validate=True)
        except ValueError:
            raise EnvelopeError("invalid $base64 blob") from None
    raise EnvelopeError('a column value is an object other than {"$base64": …}')


def to_wire(value: Any) -> Any:
    """A source (SQLite) value in its JSON form: bytes → {"$base64"}, big ints → strings."""
    if isinstance(value, bytes | bytearray | memoryview):
        return blob_to_wire(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return str(value)
    return value


def from_wire(value: Any) -> Any:
    """Inverse of `to_wire` for blobs; big-integer strings stay strings (the mapping decides)."""
    if isinstance(value, dict):
        return blob_from_wire(value)
    if isinstance(value, list):
        raise EnvelopeError("a column value is an array; JSON columns travel as text")
    return value


def canonical_json(
    obj: Mapping[str, Any],
    *,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = False,
) -> str:
    """The one canonical JSON of d1cdc: sorted keys, no spaces, no NaN. The message key and
    envelope use it as is; the consumer's key identity (`consumers.change.key_identity`)
    passes `default` for converted values and keeps `ensure_ascii`, because it is stored."""
    # allow_nan=False: NaN/Infinity are not JSON (JSON.stringify writes null); refuse them.
    return json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=ensure_ascii,
        allow_nan=False,
        default=default,
    )


def _reject_constant(name: str) -> Any:
    raise EnvelopeError(f"{name} is not valid JSON")


# One decoder for every event: `json.loads(..., parse_constant=…)` would build a new
# JSONDecoder per call, a fifth of the decode time (measured).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# orjson parses an envelope 4x faster, but turns integers beyond 64 bits into floats, and
# rejects a few inputs the stdlib accepts (lone surrogates, NaN, BOM, 1e400). So it is only
# trusted on bytes without a 19-digit run (every integer it holds is exact then) and only
# when it succeeds; anything else is decided by the stdlib decoder, the contract's reference.
# Equivalence is property-tested in tests/test_envelope_parse.py.
# (Every digit → "0", every other byte → " ", then a substring test: 2x faster than a regex.)
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def encode_key(key: Mapping[str, Any]) -> bytes:
    return canonical_json({k: to_wire(v) for k, v in key.items()}).encode("utf-8")


def _wire_columns(table: str, columns: dict[str, Any]) -> dict[str, Any]:
    """`to_wire` of every value; `columns` itself when all are plain JSON scalars already
    (the common case: no copy). Refuses NaN/Infinity, which are not JSON."""
    plain = True
    for value in columns.values():  # every value: a NaN after a blob must be refused too
        kind = type(value)
        if kind is float and not math.isfinite(value):
            raise EnvelopeError(f"table {table!r}: event cannot be encoded: {value} is not JSON")
        if kind not in _PLAIN or (kind is int and abs(value) > MAX_SAFE_INTEGER):
            plain = False
    return columns if plain else {k: to_wire(v) for k, v in columns.items()}


def encode_event(event: ChangeEvent) -> tuple[bytes, bytes]:
    """(message key, message value) for Kafka.

    The key is the canonical JSON every producer must agree on byte for byte (it decides
    the partition); the value only has to be the same JSON document, so it is written by
    orjson (several times faster than the stdlib), falling back to the stdlib for anything
    orjson refuses (a lone surrogate, for one), which then raises with its own reason.
    """
    body = {
        "v": ENVELOPE_VERSION,
        "table": event.table,
        "op": event.op,
        "key": _wire_columns(event.table, event.key),
        "row": None if event.row is None else _wire_columns(event.table, event.row),
        "ts_ms": event.ts_ms,
        "event_id": event.event_id,
        "origin": event.origin,
    }
    try:
        try:
            value = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            value = canonical_json(body).encode("utf-8")
        return encode_key(event.key), value
    except ValueError as exc:  # NaN/Infinity, or a value json cannot represent
        raise EnvelopeError(f"table {event.table!r}: event cannot be encoded: {exc}") from None


def parse_json(value: bytes) -> Any:
    """The JSON document in `value`, exactly as the stdlib decoder reads it; else EnvelopeError."""
    if _LONG_DIGIT_RUN not in value.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass  # the stdlib decides, with its own message
    try:
        return _DECODER.decode(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError(f"not UTF-8 JSON: {exc}") from None


def _from_wire_values(values: dict[str, Any]) -> dict[str, Any]:
    """`from_wire` of every value; the parser's fresh dict itself when all are plain scalars
    (checked in C by `issuperset(map(type, …))`: the common case, no copy)."""
    if _PLAIN.issuperset(map(type, values.values())):
        return values
    return {k: v if type(v) in _PLAIN else from_wire(v) for k, v in values.items()}


def decode_key(message_key: bytes | None) -> dict[str, Any] | None:
    """The key columns a Kafka message key names (None when it is not a JSON object)."""
    if message_key is None:
        return None
    try:
        parsed = parse_json(message_key)
    except EnvelopeError:
        return None
    return _from_wire_values(parsed) if isinstance(parsed, dict) else None


def key_matches(message_key: bytes | None, key: Mapping[str, Any]) -> bool:
    """Does the Kafka message key name the same key columns as the envelope's `key`?

    On the consumers' hot path: orjson straight on the (small) key first, which decides the
    usual case of plain scalars; only a key that differs that way (blobs, integers beyond
    64 bits, another producer's spelling) goes through the full `decode_key`."""
    if message_key is not None:
        try:
            if orjson.loads(message_key) == key:
                return True
        except orjson.JSONDecodeError:
            pass
    return decode_key(message_key) == key


def decode_event(value: bytes | None) -> ChangeEvent:
    """Parse and validate one message value; raise `EnvelopeError` naming what is wrong."""
    return ChangeEvent(*decode_fields(value))


EventFields = tuple[str, Op, dict[str, Any], dict[str, Any] | None, int, str, str]
_NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]


class _Envelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The v1 envelope as msgspec checks it in C while it parses: every rule of
    `reference_decode_fields` on the fields themselves (an int `v` of 1, not `true` or
    `1.0`; a non-negative int `ts_ms`; …). What it cannot say — blobs in the columns, an
    upsert's row, key columns repeated in the row — is checked after, as the reference does.
    gc=False: its fields are fresh values from the parser, which cannot form a cycle."""

    v: Literal[1]
    table: _NonEmptyStr
    op: Op
    key: Annotated[dict[str, Any], msgspec.Meta(min_length=1)]
    row: dict[str, Any] | None
    ts_ms: Annotated[int, msgspec.Meta(ge=0)]
    event_id: _NonEmptyStr
    origin: str = "app"


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def decode_fields(value: bytes | None) -> EventFields:
    """`decode_event` as the tuple (table, op, key, row, ts_ms, event_id, origin): the
    consumers' hot path, which has no use for the `ChangeEvent` object itself.

    msgspec parses and validates an envelope in C, 2x faster than orjson plus the checks in
    Python. It accepts a subset of what the reference accepts, with the same values (exact
    big integers, the same doubles, the last of repeated names); anything it refuses (a
    malformed event, but also a lone surrogate, NaN, 1e400, a field given twice with an
    invalid first value) is handed to `reference_decode_fields`, which decides and gives the
    reason. Equality with the reference is property-tested (tests/test_decode_fast_path.py).
    """
    if value is not None:
        try:
            body = _ENVELOPE.decode(value)
        except (msgspec.MsgspecError, RecursionError):
            pass  # the reference decides, with its reason
        else:
            if body.row is not None or body.op == "delete":
                key, row = _columns(body.key, body.row)
                return body.table, body.op, key, row, body.ts_ms, body.event_id, body.origin
    return reference_decode_fields(value)


def reference_decode_fields(value: bytes | None) -> EventFields:
    """The contract's reference decoder: the stdlib's JSON (orjson where it is the same)
    and every rule checked in Python, each refusal an `EnvelopeError` with its reason."""
    if value is None:
        raise EnvelopeError("null message value (a tombstone) is not an event")
    body = parse_json(value)
    if not isinstance(body, dict):
        raise EnvelopeError(f"envelope is a JSON {type(body).__name__}, not an object")
    if body.keys() != _FIELDS:  # the usual envelope has exactly all fields: one comparison
        missing = _FIELDS - body.keys() - {"origin"}
        if missing:
            raise EnvelopeError(f"missing field(s): {', '.join(sorted(missing))}")
        extra = body.keys() - _FIELDS
        if extra:
            raise EnvelopeError(f"unknown field(s): {', '.join(sorted(extra))}")
    if type(body["v"]) is not int or body["v"] != ENVELOPE_VERSION:  # not True, not 1.0
        raise EnvelopeError(f"unsupported envelope version {body['v']!r}")
    table, op, key, row = body["table"], body["op"], body["key"], body["row"]
    if not isinstance(table, str) or not table:
        raise EnvelopeError("table must be a non-empty string")
    if op != "upsert" and op != "delete":  # not `in {…}`: a list or object is unhashable
        raise EnvelopeError(f"op must be 'upsert' or 'delete', not {op!r}")
    if not isinstance(key, dict) or not key:
        raise EnvelopeError("key must be a non-empty object")
    if op == "upsert" and not isinstance(row, dict):
        raise EnvelopeError("an upsert needs a row object")
    if row is not None and not isinstance(row, dict):
        raise EnvelopeError("row must be an object or null")
    ts_ms = body["ts_ms"]
    if not isinstance(ts_ms, int) or isinstance(ts_ms, bool) or ts_ms < 0:
        raise EnvelopeError("ts_ms must be a non-negative integer")
    if not isinstance(body["event_id"], str) or not body["event_id"]:
        raise EnvelopeError("event_id must be a non-empty string")
    origin = body.get("origin", "app")
    if not isinstance(origin, str):
        raise EnvelopeError("origin must be a string")
    decoded_key, decoded_row = _columns(key, row)
    return table, op, decoded_key, decoded_row, ts_ms, body["event_id"], origin


def _columns(
    key: dict[str, Any], row: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Key and row columns from their wire form; the key columns a row repeats must agree."""
    decoded_key = _from_wire_values(key)
    decoded_row = None if row is None else _from_wire_values(row)
    if decoded_row is not None:
        for k, v in decoded_key.items():
            if k in decoded_row and decoded_row[k] != v:
                raise EnvelopeError(f"key column {k!r} differs between key and row")
    return decoded_key, decoded_row
