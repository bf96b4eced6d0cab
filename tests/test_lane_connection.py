"""An apply lane keeps its MySQL connection between transactions (consumers.lane_connection):
no ping or reset round trip per transaction, yet a dropped or failed connection is never
reused. Against a real MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from consumers.coalesce import coalesce_batch
from consumers.lane_connection import LaneConnection
from consumers.sink import MySQLSink
from tests.consume_helpers import MAPPING, as_change, prepare_target, rows, tag_event
from worker.metrics import RETRIES

pytestmark = pytest.mark.integration


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(target_url: str) -> Iterator[sa.Engine]:
    engine = prepare_target(target_url)
    yield engine
    engine.dispose()


def _session(conn: sa.Connection) -> tuple[int, int]:
    """(CONNECTION_ID(), ROLLBACKs this session has run) of the connection."""
    connection_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
    status = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'").one()
    return int(connection_id), int(status[1])


def _kill(engine: sa.Engine, connection_id: int) -> None:
    with engine.connect() as other:
        other.exec_driver_sql(f"KILL {connection_id}")


def test_transactions_share_one_connection_with_no_reset_between(engine: sa.Engine) -> None:
    lane = LaneConnection(engine, clock=_Clock())
    seen = []
    for i in range(3):
        with lane.transaction() as conn:
            conn.exec_driver_sql(f"INSERT INTO `tag` (id, label) VALUES ('t{i}', 'x')")
            seen.append(_session(conn))
    lane.close()
    assert len({connection_id for connection_id, _ in seen}) == 1
    # Taken from the pool for each transaction, it would be rolled back on each return.
    assert len({rollbacks for _, rollbacks in seen}) == 1
    assert sorted(rows(engine, "tag")) == ["t0", "t1", "t2"]


def test_a_connection_idle_too_long_is_checked_out_again_and_pinged(engine: sa.Engine) -> None:
    clock = _Clock()
    lane = LaneConnection(engine, idle_s=1.0, clock=clock)
    with lane.transaction() as conn:
        first, _ = _session(conn)
    _kill(engine, first)  # what a server or proxy does to a connection left idle
    clock.now += 1.5
    with lane.transaction() as conn:  # the pool's checkout pinged the dead one: replaced
        second, _ = _session(conn)
    lane.close()
    assert second != first


def test_after_an_error_the_connection_is_discarded_and_nothing_committed(
    engine: sa.Engine,
) -> None:
    lane = LaneConnection(engine, clock=_Clock())
    with pytest.raises(sa.exc.DBAPIError), lane.transaction() as conn:
        first, _ = _session(conn)
        conn.exec_driver_sql("INSERT INTO `tag` (id, label) VALUES ('t1', 'x')")
        conn.exec_driver_sql("INSERT INTO `no_such_table` VALUES (1)")
    with lane.transaction() as conn:
        second, _ = _session(conn)
    lane.close()
    assert second != first
    assert rows(engine, "tag") == {}


def test_a_lane_connection_dropped_between_batches_is_retried_on_a_fresh_one(
    engine: sa.Engine,
) -> None:
    """Within `idle_s` nothing pings it: the first statement fails (2013/2006), the
    transaction is retried (consumers.retry) on a new connection, and the batch applies."""
    sink = MySQLSink(engine, MAPPING, rows_per_statement=4)
    sink.apply(coalesce_batch([as_change(tag_event("t0", 1))]))
    lane = sink._connections[0]
    assert lane._connection is not None
    with lane.transaction() as conn:
        connection_id, _ = _session(conn)
    _kill(engine, connection_id)
    retries = RETRIES._value.get()
    result = sink.apply(coalesce_batch([as_change(tag_event(f"t{i}", 2)) for i in range(10)]))
    sink.close()
    assert RETRIES._value.get() == retries + 1  # the dropped connection cost one retry
    assert result.applied[("tag", "upsert")] == 10 and not result.dead
    assert sorted(rows(engine, "tag")) == sorted(f"t{i}" for i in range(10))
