"""The MySQL target read as a source: what the reverse poller (issue 16) pages through.

After cut-over MySQL (PlanetScale) is the primary and D1 the replica, so the backfill
poller's algorithm runs the other way round and reads MySQL. This reader answers SQL in
MySQL's dialect (`producers.keyset.MYSQL`: backticks, `%s`) and returns rows as PyMySQL
does (`datetime` for DATETIME(3), `Decimal`, `bytes`, …); `worker.schema.unconvert` turns
them back into the source representation. Read-only, like every source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.db import root_cause
from worker.errors import SchemaError, ServiceError
from worker.sources.base import Row


class MySQLSource:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = f"mysql:{engine.url.host}/{engine.url.database}"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            with self.engine.connect() as conn:
                result = conn.exec_driver_sql(sql, tuple(params))
                return [dict(r._mapping) for r in result]
        except sa.exc.OperationalError as exc:
            raise ServiceError(f"MySQL ({self.name}) query failed: {root_cause(exc)}") from None
        except sa.exc.DBAPIError as exc:  # a mapped table or column missing in MySQL
            raise SchemaError(
                f"MySQL ({self.name}) refused a query: {root_cause(exc)} "
                "(does the target schema match the mapping? `d1cdc schema apply`)"
            ) from None

    def close(self) -> None:
        """The engine belongs to the caller."""
