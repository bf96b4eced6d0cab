"""Helpers of the consumer tests: a small mapping, events as Kafka would carry them, topics."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterable
from itertools import count
from typing import Any

import sqlalchemy as sa
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from consumers.change import Change, MessageRef
from consumers.coalesce import coalesce_batch
from consumers.decode import to_change
from consumers.memory_sink import MemorySink
from consumers.row_versions import SIDE_TABLE
from worker.db import create_target_engine
from worker.envelope import ChangeEvent, Op, encode_event, new_event
from worker.kafka import admin_client, producer_config
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping, mapping_from_dict

MAPPING_TOML = """
[tables.user]
primary_key = ["id"]
version_columns = ["updatedAt"]
[tables.user.columns.id]
type = "string(20)"
nullable = false
[tables.user.columns.email]
type = "string(100)"
[tables.user.columns.name]
type = "text"
[tables.user.columns.active]
type = "boolean"
[tables.user.columns.updatedAt]
type = "timestamp_ms"
nullable = false
[[tables.user.indexes]]
name = "user_email"
columns = ["email"]
unique = true

[tables.tag]
primary_key = ["id"]
[tables.tag.columns.id]
type = "string(20)"
nullable = false
[tables.tag.columns.label]
type = "text"
"""
MAPPING: Mapping = mapping_from_dict(tomllib.loads(MAPPING_TOML))  # one definition, two forms
BASE_MS = 1_760_000_000_000
_offsets = count()


def user_event(
    uid: str, version: int, op: Op = "upsert", *, name: str | None = None, **extra: Any
) -> ChangeEvent:
    """A `user` event at updatedAt = BASE_MS + version; a delete carries the before-image."""
    row = {
        "id": uid,
        "email": extra.pop("email", f"{uid}@example.com"),
        "name": name if name is not None else f"{uid}-v{version}",
        "active": extra.pop("active", 1),
        "updatedAt": BASE_MS + version,
        **extra,
    }
    return new_event("user", op, {"id": uid}, row, ts_ms=BASE_MS + version)


def tag_event(tid: str, ts: int, op: Op = "upsert", label: str = "x") -> ChangeEvent:
    row = {"id": tid, "label": label} if op == "upsert" else None
    return new_event("tag", op, {"id": tid}, row, ts_ms=BASE_MS + ts)


def as_change(event: ChangeEvent, prefix: str = "test") -> Change:
    key, value = encode_event(event)
    source = MessageRef(f"{prefix}.{event.table}", 0, next(_offsets), key, value)
    return to_change(source, MAPPING)


def prepare_target(url: str, mapping: Mapping = MAPPING) -> sa.Engine:
    engine = create_target_engine(url, pool_size=2)
    apply_mapping(engine, mapping)
    return engine


def rows(engine: sa.Engine, table: str) -> dict[str, dict[str, Any]]:
    """Target rows of `table` by id."""
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f"SELECT * FROM `{table}` ORDER BY id")
        return {r["id"]: dict(r) for r in result.mappings()}


def create_topics(bootstrap: str, prefix: str, tables: Iterable[str], partitions: int = 3) -> None:
    admin = admin_client(bootstrap)
    topics = [
        NewTopic(f"{prefix}.{t}", num_partitions=partitions, replication_factor=1) for t in tables
    ]
    for future in admin.create_topics(topics).values():
        future.result(timeout=30)


def produce(bootstrap: str, prefix: str, events: Iterable[ChangeEvent]) -> int:
    producer = Producer(producer_config(bootstrap))
    n = 0
    for event in events:
        key, value = encode_event(event)
        producer.produce(f"{prefix}.{event.table}", key=key, value=value)
        n += 1
    assert producer.flush(30) == 0
    return n


def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes | None) -> None:
    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float = 60.0,
    what: str = "condition",
    interval_s: float = 0.2,
) -> None:
    """Poll `condition` every `interval_s` until true; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def assert_ends_like_the_twin(
    sink: Any, engine: sa.Engine, events: list[ChangeEvent], batch: int
) -> None:
    """Apply `events` from empty tables, `batch` at a time, to `sink` (a `MySQLSink`) and to
    the in-memory twin: MariaDB's `user` names and `tag` labels must equal the twin's."""
    with engine.begin() as conn:
        for table in ("user", "tag", SIDE_TABLE):
            conn.exec_driver_sql(f"DELETE FROM `{table}`")
    twin = MemorySink(MAPPING)
    changes = [as_change(e) for e in events]
    for start in range(0, len(changes), batch):
        part = coalesce_batch(changes[start : start + batch])
        sink.apply(part)
        twin.apply(part)
    for table, column in (("user", "name"), ("tag", "label")):
        expected = {i[1]: r[column] for i, r in twin.rows.items() if i[0] == table}
        actual = {f'{{"id":"{k}"}}': r[column] for k, r in rows(engine, table).items()}
        assert actual == expected
