"""One apply lane's MySQL connection, kept checked out from one transaction to the next.

Why: taken from the pool for each transaction, a connection was pinged on the way out
(`pool_pre_ping`) and rolled back on the way in (the pool's reset on return): two round
trips on top of the transaction's own 5-6 (side-table probe, upserts, commit; demo
workload), and in a `d1cdc consume` process each round trip ends by waiting for the GIL
while the loop's thread decodes the next batch. Measured: x1.05 events/s with MariaDB a
1 ms round trip away (ops/bench/bench_apply.py --mysql-delay-ms 0.5), x1.01-1.03 on
localhost. Kept between transactions, a lane's connection needs neither: each
transaction ends in its own COMMIT or ROLLBACK.

What the pool did that must still happen:
- A connection idle for longer than `idle_s` goes back to the pool, and the next
  transaction checks one out, pinged: after a quiet spell, a server or proxy may have
  dropped it.
- After any error the connection is discarded (invalidated, never reused): a raw
  cursor's lost connection is not seen by SQLAlchemy, and a retry (`consumers.retry`) must
  start on a fresh one.
- One transaction at a time: a lane's changes are applied by one thread at a time
  (`MySQLSink.apply` waits for every lane before the next batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

IDLE_S = 1.0  # longer unused than this: back to the pool, which pings it on checkout


class LaneConnection:
    def __init__(
        self,
        engine: Engine,
        *,
        idle_s: float = IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.idle_s = idle_s
        self._clock = clock
        self._connection: Connection | None = None
        self._last_used = 0.0

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction on this lane's connection: committed if the block returns."""
        connection = self._connection
        if connection is not None and self._clock() - self._last_used > self.idle_s:
            self.close()  # back to the pool: the checkout below pings it
            connection = None
        if connection is None:
            connection = self._connection = self.engine.connect()
        try:
            with connection.begin():
                yield connection
        except BaseException:
            self._connection = None
            connection.invalidate()  # never reused: it may be broken or mid-transaction
            connection.close()
            raise
        finally:
            self._last_used = self._clock()

    def close(self) -> None:
        """Return the connection to the pool (the next transaction checks one out again)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
