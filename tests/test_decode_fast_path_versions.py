"""consumers.versions.encode_version: the packed fast path equals the general encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.versions import encode_version, reference_encode_version
from worker.errors import SchemaError

COMPONENTS = (
    st.datetimes()
    | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]))
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([-(2**63), 2**63 - 1, 2**63, -(2**63) - 1, 0, True, False])
    | st.none()
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.binary(max_size=4)
)


def _verdict(encode: Any, values: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", encode(values)
    except SchemaError as exc:
        return "error", str(exc)


@given(st.lists(COMPONENTS, min_size=1, max_size=3).map(tuple))
def test_fast_encoding_equals_the_general_one(values: tuple[Any, ...]) -> None:
    """Same bytes for every version tuple, the same SchemaError for an out-of-range int."""
    assert _verdict(encode_version, values) == _verdict(reference_encode_version, values)


@pytest.mark.parametrize("value", [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)])
def test_extreme_datetimes_take_the_packed_path_unchanged(value: datetime) -> None:
    """The smallest and largest datetime: their microseconds fit the packed 64 bits."""
    assert encode_version((value, 1)) == reference_encode_version((value, 1))
