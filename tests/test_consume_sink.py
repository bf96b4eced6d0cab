"""MySQLSink against a real MariaDB: guards, tombstones, collisions, poison isolation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.coalesce import coalesce_batch
from consumers.row_versions import SIDE_TABLE, prune_tombstones
from consumers.sink import MySQLSink
from tests.consume_helpers import (
    BASE_MS,
    MAPPING,
    as_change,
    assert_ends_like_the_twin,
    prepare_target,
    rows,
    tag_event,
    user_event,
)
from worker.db import create_target_engine
from worker.envelope import new_event

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(target_url: str) -> Any:
    engine = prepare_target(target_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sink(engine: sa.Engine) -> MySQLSink:
    return MySQLSink(engine, MAPPING, rows_per_statement=3, rows_per_transaction=7)


def _apply(sink: MySQLSink, *events: Any) -> Any:
    return sink.apply(coalesce_batch([as_change(e) for e in events]))


def test_older_upsert_never_overwrites_a_newer_row(sink: MySQLSink, engine: sa.Engine) -> None:
    """P2: the stored version guards the row; a stale event changes nothing."""
    _apply(sink, user_event("u1", 5, name="new"))
    _apply(sink, user_event("u1", 3, name="old"))
    assert rows(engine, "user")["u1"]["name"] == "new"


def test_equal_version_applies_the_incoming_event(sink: MySQLSink, engine: sa.Engine) -> None:
    """Tie rule: equal version → incoming event applies."""
    _apply(sink, user_event("u1", 5, name="first"))
    _apply(sink, user_event("u1", 5, name="second"))
    assert rows(engine, "user")["u1"]["name"] == "second"


def test_same_events_applied_twice_give_the_same_state(sink: MySQLSink, engine: sa.Engine) -> None:
    """P1: a re-delivered batch is a no-op."""
    events = [user_event(f"u{i}", i) for i in range(10)] + [tag_event("t1", 1)]
    _apply(sink, *events)
    first = rows(engine, "user"), rows(engine, "tag")
    _apply(sink, *events)
    assert (rows(engine, "user"), rows(engine, "tag")) == first


def test_old_upsert_after_delete_does_not_resurrect_row(sink: MySQLSink, engine: sa.Engine) -> None:
    """A delete leaves a tombstone; an upsert not newer than it is ignored."""
    _apply(sink, user_event("u1", 5))
    _apply(sink, user_event("u1", 5, op="delete"))
    _apply(sink, user_event("u1", 4))
    _apply(sink, user_event("u1", 5))
    assert "u1" not in rows(engine, "user")


def test_newer_insert_after_delete_applies_and_keeps_the_tombstone(
    sink: MySQLSink, engine: sa.Engine
) -> None:
    """A re-insert of a deleted key is applied; the tombstone stays until pruned, so a late
    replay of the deleted row still cannot overwrite the new one."""
    _apply(sink, user_event("u1", 5), user_event("u1", 5, op="delete"))
    _apply(sink, user_event("u1", 6, name="reborn"))
    assert rows(engine, "user")["u1"]["name"] == "reborn"
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{SIDE_TABLE}`").scalar() == 1
    _apply(sink, user_event("u1", 5, name="the deleted row"))
    assert rows(engine, "user")["u1"]["name"] == "reborn"


def test_same_second_delete_and_reinsert_at_an_equal_version_is_applied(
    sink: MySQLSink, engine: sa.Engine
) -> None:
    """Issue 11 defect 2: the tombstone and the new row share a version; the re-insert was
    committed after the delete (ts_ms), so it applies; a replay of the old row does not."""
    old = user_event("u1", 5, name="first life")
    _apply(sink, old)
    delete = new_event("user", "delete", {"id": "u1"}, old.row, ts_ms=BASE_MS + 900)
    again = {**(old.row or {}), "name": "second life"}
    reinsert = new_event("user", "upsert", {"id": "u1"}, again, ts_ms=BASE_MS + 901)
    _apply(sink, delete)
    _apply(sink, reinsert)
    assert rows(engine, "user")["u1"]["name"] == "second life"
    _apply(sink, old)  # a replay of the first life, at the very same version
    assert rows(engine, "user")["u1"]["name"] == "second life"
    _apply(sink, delete, reinsert, old)  # all in one batch: the same answer
    assert rows(engine, "user")["u1"]["name"] == "second life"


def test_backfill_snapshot_loses_a_version_tie_to_a_captured_raw_update(
    sink: MySQLSink, engine: sa.Engine
) -> None:
    """Issue 12: a raw SQL update keeps `updatedAt`; a backfill snapshot read before it, at
    the same version, must not put the old content back."""
    first = user_event("u1", 5, name="before")
    _apply(sink, first)
    raw = new_event(
        "user", "upsert", {"id": "u1"}, {**(first.row or {}), "name": "raw"}, ts_ms=BASE_MS + 50
    )
    _apply(sink, raw)
    snapshot = new_event(
        "user", "upsert", {"id": "u1"}, first.row, origin="backfill", ts_ms=BASE_MS + 40
    )
    _apply(sink, snapshot)
    assert rows(engine, "user")["u1"]["name"] == "raw"
    _apply(sink, raw, snapshot)  # one batch: the same answer
    assert rows(engine, "user")["u1"]["name"] == "raw"
    newer = new_event(
        "user", "upsert", {"id": "u2"}, user_event("u2", 6).row, origin="backfill", ts_ms=1
    )
    _apply(sink, newer)  # a missing row is still filled in by backfill
    assert "u2" in rows(engine, "user")


def test_stale_delete_does_not_remove_a_newer_row(sink: MySQLSink, engine: sa.Engine) -> None:
    """A delete whose before-image is older than the stored row leaves the row."""
    _apply(sink, user_event("u1", 7))
    _apply(sink, user_event("u1", 3, op="delete"))
    assert rows(engine, "user")["u1"]["updatedAt"] == datetime.utcfromtimestamp(
        (BASE_MS + 7) / 1000
    )


def test_unversioned_table_is_guarded_by_ts_ms(sink: MySQLSink, engine: sa.Engine) -> None:
    """Without version columns, ts_ms kept in the side table decides (incl. deletes)."""
    _apply(sink, tag_event("t1", 10, label="ten"))
    _apply(sink, tag_event("t1", 5, label="five"))
    assert rows(engine, "tag")["t1"]["label"] == "ten"
    _apply(sink, tag_event("t1", 20, op="delete"))
    _apply(sink, tag_event("t1", 15, label="late"))
    assert "t1" not in rows(engine, "tag")
    _apply(sink, tag_event("t1", 25, label="back"))
    assert rows(engine, "tag")["t1"]["label"] == "back"


def test_unique_collision_with_a_different_row_is_held_back(
    sink: MySQLSink, engine: sa.Engine
) -> None:
    """An upsert whose unique email belongs to another key must not overwrite that row; the
    sink hands it back as a collision (the loop retries it, then dead-letters it)."""
    _apply(sink, user_event("u1", 1, email="same@example.com", name="owner"))
    result = _apply(sink, user_event("u2", 2, email="same@example.com"), user_event("u3", 2))
    assert result.dead == []
    assert [(c.key["id"], r.split(":")[0]) for c, r in result.collisions] == [
        ("u2", "UniqueCollision")
    ]
    target = rows(engine, "user")
    assert target["u1"]["name"] == "owner" and "u2" not in target and "u3" in target


def test_row_refused_by_mysql_is_isolated_by_bisection(sink: MySQLSink, engine: sa.Engine) -> None:
    """A value MySQL rejects (1406 data too long) dead-letters only its own event."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE `user` MODIFY `name` VARCHAR(5)")
    events = [user_event(f"u{i}", i, name="ok") for i in range(12)]
    events[7] = user_event("u7", 7, name="far too long")
    result = _apply(sink, *events)
    assert len(result.dead) == 1 and "1406" in result.dead[0].reason
    assert sorted(rows(engine, "user")) == sorted(f"u{i}" for i in range(12) if i != 7)


def test_multi_row_upsert_is_one_statement_per_chunk(target_url: str, engine: sa.Engine) -> None:
    """executemany is rewritten into one INSERT per `rows_per_statement` rows (measured)."""
    single = create_target_engine(target_url, pool_size=1)
    single.pool = sa.pool.StaticPool(single.pool._creator)  # one connection: session counters
    sink = MySQLSink(single, MAPPING, rows_per_statement=100, rows_per_transaction=1000)
    sink.apply([])  # creates the side table outside the measurement
    changes = [as_change(user_event(f"u{i}", i)) for i in range(250)]
    before = _session_inserts(single)
    sink.apply(changes)
    # 3 upsert statements; the side table gets none (versioned table, no tombstones).
    assert _session_inserts(single) - before == 3
    assert len(rows(engine, "user")) == 250
    single.dispose()


def _session_inserts(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_insert'").one()[1])


def test_prune_removes_only_expired_tombstones(sink: MySQLSink, engine: sa.Engine) -> None:
    """Tombstones older than the retention go; live-row versions of unversioned tables stay."""
    _apply(sink, user_event("u1", 1, op="delete"), tag_event("t1", 1))
    assert prune_tombstones(engine, retention_hours=1) == 0
    future = datetime(2999, 1, 1)
    assert prune_tombstones(engine, retention_hours=1, now=future) == 1
    with engine.connect() as conn:
        left = conn.exec_driver_sql(f"SELECT table_name, deleted FROM `{SIDE_TABLE}`").all()
    assert [tuple(r) for r in left] == [("tag", 0)]


@st.composite
def _histories(draw: st.DrawFn) -> list[Any]:
    events = []
    for step in range(draw(st.integers(1, 12))):
        uid = draw(st.sampled_from(["a", "b"]))
        version = draw(st.integers(0, 4))
        op = draw(st.sampled_from(["upsert", "upsert", "delete"]))
        events.append(user_event(uid, version, op=op, name=f"s{step}", email=None))
        events.append(tag_event(uid, version, op=op, label=f"s{step}"))
    return events


def test_real_database_matches_the_in_memory_twin(sink: MySQLSink, engine: sa.Engine) -> None:
    """Random histories (ties, duplicates, deletes) end identically in MariaDB and the twin."""

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_histories(), st.integers(1, 6))
    def check(events: list[Any], batch: int) -> None:
        assert_ends_like_the_twin(sink, engine, events, batch)

    sink.apply([])
    check()


def test_two_version_columns_guard_lexicographically_on_the_server(target_url: str) -> None:
    """(updatedAt, counter): a newer updatedAt wins even with a smaller counter — the case a
    left-to-right assignment of the version columns would get wrong."""
    from tests.change_factory import MAPPING as ITEMS
    from tests.change_factory import item_change

    engine = prepare_target(target_url, ITEMS)
    sink = MySQLSink(engine, ITEMS)

    def stored() -> tuple[Any, ...]:
        with engine.connect() as conn:
            return tuple(conn.exec_driver_sql("SELECT name, updatedAt, counter FROM item").one())

    sink.apply([item_change("a", "upsert", (5, 9), name="first")])
    sink.apply([item_change("a", "upsert", (6, 1), name="newer")])
    assert stored() == ("newer", 6, 1)
    sink.apply([item_change("a", "upsert", (6, 0), name="older counter")])
    sink.apply([item_change("a", "upsert", (5, 99), name="older time")])
    assert stored() == ("newer", 6, 1)
    sink.apply([item_change("a", "upsert", (6, 1), name="tie")])
    assert stored() == ("tie", 6, 1)
    engine.dispose()
