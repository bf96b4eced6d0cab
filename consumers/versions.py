"""Row versions as byte strings that sort the way the versions compare. Pure.

A row's version is the tuple of its version columns (`updated_at`, then `update_counter`,
…) or, for a table without any, the event's `ts_ms`. Deletes without a before-image carry
no version of the row at all (`None`). Versions are compared lexicographically, NULL lowest.

Encoding each tuple as bytes whose byte order equals the tuple order lets the same value be
compared in Python (coalescing) and stored in the `_d1cdc_row_versions` side table without
type juggling: `encode_version(a) < encode_version(b)` ⇔ `a < b`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from worker.errors import SchemaError

_NULL = b"\x00"
_PRESENT = b"\x01"
_INT_OFFSET = 2**63
_DATETIME_ZERO = datetime(1, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _sortable_int(value: int) -> bytes:
    if not -_INT_OFFSET <= value < _INT_OFFSET:
        raise SchemaError(f"version value {value} is outside the 64-bit integer range")
    return (value + _INT_OFFSET).to_bytes(8, "big")


def _sortable_float(value: float) -> bytes:
    # IEEE-754 bit trick: flip all bits of negatives, only the sign bit of positives.
    bits: int = struct.unpack(">Q", struct.pack(">d", value))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return bits.to_bytes(8, "big")


def _sortable_bytes(value: bytes) -> bytes:
    # Escape 0x00 as 0x00 0xFF and terminate with 0x00 0x00, so a prefix sorts first
    # and the next tuple component cannot bleed into this one.
    return value.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _datetime_micros(value: datetime) -> int:
    """Microseconds since 0001-01-01 of the wall-clock time (an offset is ignored)."""
    if value.tzinfo is not None:  # replace() is slow: only when there is something to drop
        value = value.replace(tzinfo=None)
    return (value - _DATETIME_ZERO) // _MICROSECOND


# 0x01 then 8 big-endian bytes in one call: the usual component (a timestamp, a counter)
# without the concatenation and the helper calls of the general path (3.4 → 1.4 µs for
# a (datetime, int) version, `timeit`). Equal to it by property test
# (tests/test_decode_fast_path_versions.py).
_PRESENT_U64 = struct.Struct(">BQ").pack


def _component(value: Any) -> bytes:
    kind = type(value)
    # A datetime's microseconds since 0001-01-01 are below 2^59: always in range.
    if kind is datetime and value.tzinfo is None:
        return _PRESENT_U64(1, (value - _DATETIME_ZERO) // _MICROSECOND + _INT_OFFSET)
    if kind is int and -_INT_OFFSET <= value < _INT_OFFSET:
        return _PRESENT_U64(1, value + _INT_OFFSET)
    return _reference_component(value)


def _reference_component(value: Any) -> bytes:
    if value is None:
        return _NULL
    if isinstance(value, bool | int):
        payload = _sortable_int(int(value))
    elif isinstance(value, float):
        payload = _sortable_float(value)
    elif isinstance(value, datetime):
        payload = _sortable_int(_datetime_micros(value))
    elif isinstance(value, str):
        payload = _sortable_bytes(value.encode("utf-8"))
    elif isinstance(value, bytes):
        payload = _sortable_bytes(value)
    else:
        raise SchemaError(
            f"a version column of Python type {type(value).__name__} cannot be compared; "
            "use a timestamp, integer or text column as version column"
        )
    return _PRESENT + payload


def encode_version(values: Sequence[Any]) -> bytes:
    """Bytes ordered like `values` (compared lexicographically, NULL lowest)."""
    count = len(values)
    if count == 1:  # the usual one or two version columns, without a list and a join
        return _component(values[0])
    if count == 2:
        return _component(values[0]) + _component(values[1])
    return b"".join([_component(v) for v in values])


def reference_encode_version(values: Sequence[Any]) -> bytes:
    """`encode_version` by the general path only: what the fast path must equal."""
    return b"".join([_reference_component(v) for v in values])


def ts_version(ts_ms: int) -> bytes:
    """The fallback version of a table without version columns: the event's `ts_ms`."""
    return encode_version((ts_ms,))
