"""Version encoding: bytes order equals version order, in Python and on the server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.sql import stored_is_newer
from consumers.versions import encode_version
from worker.db import create_target_engine

ints = st.integers(-(2**63), 2**63 - 1)
times = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31))
texts = st.text(max_size=8)


def _key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Python's tuple order with NULL lowest."""
    return tuple((v is not None, v if v is not None else 0) for v in values)


@given(
    st.sampled_from([ints, times, texts, st.floats(allow_nan=False)]).flatmap(
        lambda s: st.tuples(
            st.tuples(st.none() | s, st.none() | s), st.tuples(st.none() | s, st.none() | s)
        )
    )
)
def test_encoded_versions_order_like_the_tuples(
    pair: tuple[tuple[Any, ...], tuple[Any, ...]],
) -> None:
    """encode(a) < encode(b) ⇔ a < b, lexicographically with NULL lowest; equal ⇔ equal."""
    a, b = pair
    ka, kb = _key(a), _key(b)
    if isinstance(a[0], float) or isinstance(a[1], float):
        ka = tuple((p, v + 0.0) for p, v in ka)  # -0.0 == 0.0 in Python, not in bytes
        if ka == kb:
            return
    ea, eb = encode_version(a), encode_version(b)
    assert (ea < eb) == (ka < kb)
    assert (ea == eb) == (ka == kb)


@pytest.mark.integration
def test_sql_guard_agrees_with_python_on_the_server(mysql_server_url: str) -> None:
    """The SQL `stored_is_newer` computes the same answer as the byte comparison (NULL lowest)."""
    engine = create_target_engine(mysql_server_url, pool_size=1)
    expr = stored_is_newer(["%(s0)s", "%(s1)s"], ["%(i0)s", "%(i1)s"])
    values = st.none() | st.integers(0, 3)
    with engine.connect() as conn:

        @settings(max_examples=60, deadline=None)
        @given(st.tuples(values, values), st.tuples(values, values))
        def check(stored: tuple[Any, ...], incoming: tuple[Any, ...]) -> None:
            params = {"s0": stored[0], "s1": stored[1], "i0": incoming[0], "i1": incoming[1]}
            answer = conn.exec_driver_sql(f"SELECT {expr}", params).scalar()
            assert answer in (0, 1)  # never NULL
            assert bool(answer) == (encode_version(stored) > encode_version(incoming))

        check()
    engine.dispose()
