"""The on-disk spool: durable, ordered, bounded, and tolerant of a torn last line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.spool import Spool, SpooledMessage, SpoolFullError

messages = st.builds(
    SpooledMessage,
    topic=st.sampled_from(["p.user", "p.plan"]),
    key=st.text(min_size=1, max_size=20).map(lambda s: s.encode("utf-8")),
    value=st.one_of(st.none(), st.text(max_size=50).map(lambda s: s.encode("utf-8"))),
)


@settings(max_examples=50, deadline=None)
@given(batches=st.lists(st.lists(messages, max_size=5), max_size=5))
def test_read_returns_every_appended_message_in_append_order(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[SpooledMessage]]
) -> None:
    """Whatever was appended, in however many batches, reads back identically and in order."""
    spool = Spool(tmp_path_factory.mktemp("spool"))
    for batch in batches:
        spool.append(batch)
    assert list(spool.read()) == [m for batch in batches for m in batch]


def test_full_spool_raises_and_writes_nothing(tmp_path: Path) -> None:
    """A batch that would exceed the limit is refused as a whole: no partial write, no drop."""
    spool = Spool(tmp_path, max_bytes=200)
    first = SpooledMessage("p.user", b'{"id":1}', b"x" * 50)
    spool.append([first])
    with pytest.raises(SpoolFullError, match=r"spool .* is full"):
        spool.append([SpooledMessage("p.user", b'{"id":2}', b"y" * 150)])
    assert list(spool.read()) == [first]


def test_torn_last_line_is_dropped_and_later_appends_stay_readable(tmp_path: Path) -> None:
    """A crash mid-append leaves half a line; reopening truncates it instead of corrupting."""
    spool = Spool(tmp_path)
    kept = SpooledMessage("p.user", b'{"id":1}', b"{}")
    spool.append([kept])
    with spool.segments()[-1].open("ab") as fh:
        fh.write(b'{"topic":"p.user","ke')
    reopened = Spool(tmp_path)
    later = SpooledMessage("p.user", b'{"id":2}', None)
    reopened.append([later])
    assert list(reopened.read()) == [kept, later]


def test_clear_empties_the_spool(tmp_path: Path) -> None:
    """After clear() nothing is replayed again."""
    spool = Spool(tmp_path)
    spool.append([SpooledMessage("p.user", b'{"id":1}', b"{}")])
    assert not spool.is_empty()
    spool.clear()
    assert spool.is_empty()
    assert list(spool.read()) == []
