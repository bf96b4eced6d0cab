"""Every logical type, MySQL → reverse topics → D1, over the file and the HTTP sink (issue 16).

The edge-case mapping (tests/edge_mapping.py) holds every logical type the demo mapping
uses and more (composite key, reserved and odd identifiers, DECIMAL, BLOB, integers beyond
2^53). The app writes rows with edge values into MariaDB after cut-over; the reverse poller
ships them and `ConsumeLoop(into="d1")` applies them. An independent comparison
(tests/table_compare.py) then finds the D1 file equal to MariaDB, row by row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from d1_api_server import serve_d1_api
from table_compare import differences

from consumers.loop import run_until_caught_up
from producers.backfill import BackfillOptions
from producers.emitter import ChangeEmitter
from producers.reverse_poller import ReversePoller
from tests.edge_mapping import edge_mapping
from worker.config import Settings
from worker.db import create_target_engine
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.writer import write_mapping
from worker.sources import SqliteSource
from worker.topics import ensure_topics, reverse_topic_for

pytestmark = pytest.mark.integration
MAPPING = edge_mapping()
AFFINITY = {"text": "TEXT", "string": "TEXT", "json": "TEXT", "timestamp_text": "TEXT",
            "real": "REAL", "blob": "BLOB", "decimal": "TEXT"}  # fmt: skip


def _d1_schema(path: Path) -> None:
    """The D1 side's tables, as the app's Drizzle migrations made them."""
    conn = sqlite3.connect(path)
    for table in MAPPING.tables.values():
        columns = ", ".join(
            f'"{name}" {AFFINITY.get(col.type.kind, "INTEGER")}'
            + ("" if col.nullable else " NOT NULL")
            for name, col in table.columns.items()
        )
        key = ", ".join(f'"{c}"' for c in table.primary_key)
        conn.execute(f'CREATE TABLE "{table.name}" ({columns}, PRIMARY KEY ({key}))')
    conn.commit()
    conn.close()


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def _orders() -> list[dict[str, Any]]:
    """Rows as the app writes them to MySQL (Drizzle's mysql2 driver): edge values."""
    base = 1_767_000_000
    rows: list[dict[str, Any]] = []
    for i in range(130):  # > 100 parameters' worth of rows per D1 batch statement
        rows.append(
            {
                "key": f"k-{i:03d}-ü🙂",
                "select": (2**62 + i) if i % 2 else -(2**53) - i,
                "we`ird col": None if i % 5 == 0 else f"line\nbreak 'quote' \"dq\" {i}",
                "index": i,
                "isActive": i % 3 == 0,
                "doc": None if i % 7 == 0 else json.dumps({"n": i, "big": 2**60, "ü": [1.5, None]}),
                "price": Decimal(f"-{i}1234567.123456") if i % 4 else None,
                "ratio": i / 3 if i % 6 else None,
                "avatar": None if i % 8 == 0 else bytes(range(i % 256)) + b"\x00",
                "bornAt": _at((base - 86_400 * i) * 1000) if i % 9 else None,
                "seenAtMs": _at(base * 1000 + i * 7 + 123),
                "updatedAt": _at((base + i) * 1000),
                "updateCounter": i,
            }
        )
    return rows


def _write(engine: sa.Engine) -> None:
    order = sa.table("order", *(sa.column(c) for c in MAPPING.table("order").columns))
    limit = sa.table("limit", *(sa.column(c) for c in MAPPING.table("limit").columns))
    with engine.begin() as conn:
        conn.execute(order.insert(), _orders())
        conn.execute(
            limit.insert(),
            [{"id": f"l{i}", "updatedAt": _at(1_767_000_000_000 + i)} for i in range(3)],
        )


@pytest.mark.parametrize("sink", ["file", "http"])
def test_every_type_reaches_d1_exactly(
    make_settings: Callable[..., Settings], tmp_path: Path, unique_name: str, sink: str
) -> None:
    d1, mapping_path = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    _d1_schema(d1)
    write_mapping(MAPPING, mapping_path)
    with ExitStack() as stack:
        extra: dict[str, Any] = {}
        if sink == "http":
            server = stack.enter_context(serve_d1_api(d1))
            extra = {
                "source": "d1http",
                "d1_api_base": server.base_url,
                "d1_account_id": server.account,
                "d1_database_id": server.database,
                "d1_api_token": server.token,
            }
        settings = make_settings(
            source_path=d1, mapping_path=mapping_path,
            reverse_group_id=f"{unique_name}-reverse", **extra,
        )  # fmt: skip
        engine = create_target_engine(settings.target_url.get_secret_value())
        apply_mapping(engine, MAPPING)
        _write(engine)
        ensure_topics(
            admin_client(settings.kafka_bootstrap), settings.topic_prefix, list(MAPPING.tables),
            2, 1, topic_of=reverse_topic_for,
        )  # fmt: skip
        emitter = ChangeEmitter.from_settings(
            settings, MAPPING, origin="reverse", topic_of=reverse_topic_for
        )
        replica = SqliteSource(d1)
        poller = ReversePoller(engine, replica, emitter, BackfillOptions(chunk=50))
        results = poller.run_once(MAPPING.in_level_order())
        emitter.close()
        replica.close()
        assert sum(r.emitted for r in results) >= 133  # the lookback re-reads some
        outcome = run_until_caught_up(settings, MAPPING, timeout_s=120, into="d1")
        assert outcome.caught_up and outcome.dead_letters == 0
        assert differences(d1, engine, MAPPING) == []
        engine.dispose()
