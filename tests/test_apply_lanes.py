"""A batch over several MySQL connections (consumers.lanes): how it is shared, and the sink
with two lanes against a real MariaDB ending exactly where the in-memory twin does."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.change import Change
from consumers.coalesce import coalesce_batch
from consumers.lanes import split_lanes
from consumers.sink import ApplyResult, MySQLSink
from tests.consume_helpers import (
    MAPPING,
    as_change,
    assert_ends_like_the_twin,
    prepare_target,
    rows,
    tag_event,
    user_event,
)
from worker.errors import SchemaError, ServiceError
from worker.schema.mapping import mapping_from_dict


def _batch(tags: int, users: int = 0, *, deletes_first: int = 0) -> list[Change]:
    """Coalesced changes: `tags` tag keys (the first `deletes_first` deleted, then
    re-inserted: two changes of one key), `users` user keys."""
    events = [tag_event(f"t{i}", 1, op="delete") for i in range(deletes_first)]
    events += [tag_event(f"t{i}", 2) for i in range(tags)]
    events += [user_event(f"u{i}", 2) for i in range(users)]
    return coalesce_batch([as_change(e) for e in events])


def test_a_batch_is_shared_by_key_and_nothing_is_lost_or_doubled() -> None:
    changes = _batch(40, 10)
    lanes = split_lanes(changes, 2, whole={"user"}, split_from=5)
    assert len(lanes) == 2
    assert Counter(id(c) for lane in lanes for c in lane) == Counter(id(c) for c in changes)
    # The table with a secondary UNIQUE index stays in one lane; the other one is spread.
    assert [sum(c.table == "user" for c in lane) for lane in lanes].count(0) == 1
    assert all(any(c.table == "tag" for c in lane) for lane in lanes)
    assert abs(len(lanes[0]) - len(lanes[1])) <= 10  # at most the whole table's size


def test_a_table_with_a_delete_in_the_batch_stays_in_one_lane() -> None:
    """Under REPEATABLE READ a delete of an absent key locks its gap, and another lane's
    inserts into that gap deadlocked (measured: about once per batch with 40 % deletes)."""
    changes = _batch(40, 10, deletes_first=8)
    lanes = split_lanes(changes, 2, whole=set(), split_from=5)
    assert [sum(c.table == "tag" for c in lane) for lane in lanes].count(0) == 1
    assert Counter(id(c) for lane in lanes for c in lane) == Counter(id(c) for c in changes)
    for lane in lanes:  # a key's delete and re-insert: same lane, delete first
        for ident in {c.identity for c in lane}:
            ops = [c.op for c in lane if c.identity == ident]
            assert ops == [c.op for c in changes if c.identity == ident]


def test_small_tables_and_one_lane_are_not_split() -> None:
    changes = _batch(4, 3)
    assert split_lanes(changes, 1, whole=set(), split_from=1) == [changes]
    # Each table under `split_from`: whole tables, one per lane.
    lanes = split_lanes(changes, 2, whole=set(), split_from=5)
    assert sorted(tuple({c.table for c in lane}) for lane in lanes) == [("tag",), ("user",)]
    assert split_lanes([], 2, whole=set(), split_from=1) == []
    single = _batch(1)
    assert split_lanes(single, 3, whole=set(), split_from=1) == [single]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 20), st.integers(0, 10), st.integers(1, 4))
def test_every_change_lands_in_exactly_one_lane_with_its_key(
    tags: int, users: int, deletes: int, lanes: int
) -> None:
    changes = _batch(tags, users, deletes_first=min(deletes, tags))
    parts = split_lanes(changes, lanes, whole={"user"}, split_from=3)
    assert len(parts) <= lanes and all(parts)
    assert sorted(id(c) for p in parts for c in p) == sorted(id(c) for c in changes)
    owner = {c.identity: i for i, p in enumerate(parts) for c in p}
    assert all(owner[c.identity] == i for i, p in enumerate(parts) for c in p)


def test_tables_a_lane_must_not_share_are_kept_whole() -> None:
    """A secondary UNIQUE index, or a decimal / real key (1.5 and 1.50: two identities, one
    row to MySQL), keeps a table in one lane; a text or integer key does not."""
    tables: dict[str, Any] = {
        name: {"primary_key": ["id"], "columns": {"id": {"type": kind, "nullable": False}}}
        for name, kind in (
            ("by_text", "string(20)"),
            ("by_int", "integer"),
            ("by_decimal", "decimal(10,2)"),
            ("by_real", "real"),
        )
    }
    mapping = mapping_from_dict({"tables": tables})
    lazy = sa.create_engine("mysql+pymysql://nobody@127.0.0.1:1/none")  # never connected
    assert MySQLSink(lazy, mapping, connections=2)._whole_tables == {"by_decimal", "by_real"}
    assert MySQLSink(lazy, MAPPING, connections=2)._whole_tables == {"user"}


class _FailingLanes(MySQLSink):
    """A sink whose lanes fail as told: by lane thread (the caller's own lane is "first")."""

    def __init__(self, engine: sa.Engine, first: Exception | None, other: Exception | None):
        super().__init__(engine, MAPPING, rows_per_statement=2, connections=2)
        self.first, self.other = first, other
        self.ended: list[str] = []
        self._first_ended = threading.Event()

    def _apply_lane(self, lane: int, changes: Any) -> ApplyResult:
        on_lane_thread = threading.current_thread().name.startswith("d1cdc-lane")
        if on_lane_thread:
            # The other lane ends last, and late: an apply() that did not wait for it would
            # have returned or raised by now, and `ended` would lack it.
            assert self._first_ended.wait(10)
            threading.Event().wait(0.2)
            self.ended.append("other")
            error = self.other
        else:
            self.ended.append("first")
            self._first_ended.set()
            error = self.first
        if error is not None:
            raise error
        return ApplyResult()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("first", "other", "raised"),
    [
        (None, ServiceError("gone"), ServiceError),
        (ServiceError("gone"), SchemaError("no such column"), SchemaError),
        (SchemaError("no such column"), ServiceError("gone"), SchemaError),
        (None, ValueError("a bug"), ValueError),
    ],
)
def test_a_failed_lane_fails_the_batch_after_every_lane_ended(
    engine: sa.Engine, first: Exception | None, other: Exception | None, raised: type
) -> None:
    """Whichever lane fails, apply() raises only once both lanes ended, and a schema
    mismatch or a bug is never hidden behind "MySQL unavailable" (which only pauses)."""
    sink = _FailingLanes(engine, first, other)
    with pytest.raises(raised):
        sink.apply(_batch(20))
    assert sorted(sink.ended) == ["first", "other"]
    sink.close()


@pytest.fixture
def engine(target_url: str) -> Any:
    engine = prepare_target(target_url)
    yield engine
    engine.dispose()


def _threads_used(engine: sa.Engine) -> set[str]:
    """Names of the threads that check connections out of `engine`'s pool from now on."""
    names: set[str] = set()
    sa.event.listen(engine, "checkout", lambda *_: names.add(threading.current_thread().name))
    return names


@pytest.mark.integration
def test_two_lanes_apply_a_batch_on_two_threads_and_end_like_one(engine: sa.Engine) -> None:
    sink = MySQLSink(engine, MAPPING, rows_per_statement=4, rows_per_transaction=50, connections=2)
    sink.apply([])  # side table and server checks first
    threads = _threads_used(engine)
    result = sink.apply(_batch(30, 6, deletes_first=5))
    sink.close()
    assert any(name.startswith("d1cdc-lane") for name in threads) and len(threads) == 2
    assert result.applied[("tag", "upsert")] == 30 and result.applied[("tag", "delete")] == 5
    assert result.applied[("user", "upsert")] == 6 and not result.dead
    assert sorted(rows(engine, "tag")) == sorted(f"t{i}" for i in range(30))
    assert len(rows(engine, "user")) == 6


@pytest.mark.integration
def test_a_row_refused_in_one_lane_is_dead_lettered_alone(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE `tag` MODIFY `label` VARCHAR(5)")
    sink = MySQLSink(engine, MAPPING, rows_per_statement=4, rows_per_transaction=50, connections=2)
    events = [tag_event(f"t{i}", 1, label="ok") for i in range(24)]
    events[13] = tag_event("t13", 1, label="far too long")
    sink.apply([])
    threads = _threads_used(engine)
    result = sink.apply(coalesce_batch([as_change(e) for e in events]))
    sink.close()
    assert len(threads) == 2  # both lanes applied (and bisected) their part
    assert [d.reason.split(":")[0] for d in result.dead] == ["RowRefusedError"]
    assert "1406" in result.dead[0].reason and "t13" in result.dead[0].reason
    assert sorted(rows(engine, "tag")) == sorted(f"t{i}" for i in range(24) if i != 13)


@pytest.mark.integration
def test_foreign_keys_in_the_target_mean_one_connection(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE `fk_child` LIKE `tag`")  # the key's collation too
        conn.exec_driver_sql(
            "ALTER TABLE `fk_child` ADD FOREIGN KEY (`id`) REFERENCES `tag` (`id`)"
        )
    sink = MySQLSink(engine, MAPPING, rows_per_statement=4, connections=2)
    threads = _threads_used(engine)
    sink.apply(_batch(20))
    assert sink.connections == 1 and not any(n.startswith("d1cdc-lane") for n in threads)
    assert len(rows(engine, "tag")) == 20


@st.composite
def _histories(draw: st.DrawFn) -> list[Any]:
    events = []
    for step in range(draw(st.integers(1, 30))):
        key = draw(st.sampled_from("abcdefgh"))
        version = draw(st.integers(0, 4))
        op = draw(st.sampled_from(["upsert", "upsert", "delete"]))
        events.append(user_event(key, version, op=op, name=f"s{step}", email=None))
        events.append(tag_event(key, version, op=op, label=f"s{step}"))
    return events


@pytest.mark.integration
def test_two_lanes_match_the_in_memory_twin(engine: sa.Engine) -> None:
    """Random histories (ties, duplicates, deletes, re-inserts) over two lanes end where the
    twin ends; tables are split from 2 changes, so both lanes carry keys of one table."""
    sink = MySQLSink(engine, MAPPING, rows_per_statement=2, rows_per_transaction=3, connections=2)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_histories(), st.integers(2, 16))
    def check(events: list[Any], batch: int) -> None:
        assert_ends_like_the_twin(sink, engine, events, batch)

    sink.apply([])
    check()
    sink.close()


@pytest.mark.integration
def test_deletes_among_inserts_do_not_make_the_lanes_deadlock(engine: sa.Engine) -> None:
    """Before deletes kept their table in one lane, this history deadlocked about once per
    batch (errno 1213, retried): the retries counter must not move now."""
    import random

    from consumers.retry import RETRIES

    sink = MySQLSink(engine, MAPPING, rows_per_statement=500, connections=2)
    pick = random.Random(1)
    before = RETRIES._value.get()
    for batch in range(10):
        events = [
            tag_event(f"t{pick.randrange(20_000)}", batch + 1, op=op)
            for op in pick.choices(["delete", "upsert"], weights=[4, 6], k=2000)
        ]
        sink.apply(coalesce_batch([as_change(e) for e in events]))
    sink.close()
    assert RETRIES._value.get() == before
