"""The `_d1cdc_row_versions` side table: tombstones, and versions of unversioned tables.

One row per (table, key) the target must remember outside the row itself:
- `deleted = 1`: a tombstone. The key was deleted at `version`/`ts_ms`; an upsert that is
  not newer must not resurrect it (DESIGN.md P2). Pruned after the retention period.
- `deleted = 0`: the last applied `ts_ms` of a live row of a table without version columns
  (the target table has no column to hold it). Never pruned: it is that row's guard.

Keys are stored as canonical JSON plus its SHA-1 (the index key: InnoDB keys are limited
to 3072 bytes, a JSON key is not). Versions are `consumers.versions` byte strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from consumers.change import StoredState
from worker.chunking import chunks

SIDE_TABLE = "_d1cdc_row_versions"
_LOOKUP_CHUNK = 1000
_PRUNE_CHUNK = 10_000

CREATE_SIDE_TABLE = f"""
CREATE TABLE IF NOT EXISTS `{SIDE_TABLE}` (
  `table_name` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `pk_hash` BINARY(20) NOT NULL,
  `pk_json` TEXT NOT NULL,
  `deleted` BOOLEAN NOT NULL,
  `version` VARBINARY(512) NULL,
  `ts_ms` BIGINT NOT NULL,
  `changed_at` DATETIME(3) NOT NULL,
  PRIMARY KEY (`table_name`, `pk_hash`),
  KEY `prune_idx` (`deleted`, `changed_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""


def pk_hash(pk_json: str) -> bytes:
    return hashlib.sha1(pk_json.encode("utf-8")).digest()


def ensure_side_table(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(CREATE_SIDE_TABLE)


def read_states(
    conn: Connection, table: str, keys: Iterable[str], *, probe: bool = True
) -> dict[str, StoredState]:
    """Side-table rows of `keys` (canonical JSON).

    No `FOR UPDATE`: a key lives on one partition, and one consumer owns a partition at a
    time, so nobody else writes these rows meanwhile; gap locks on absent keys would only
    make two consumers deadlock on the side table.
    """
    found: dict[str, StoredState] = {}
    # One cheap probe first: during an initial load no key of the table has a state yet,
    # and the per-key lookups would be pure overhead (~5% of the apply time, measured).
    # The caller skips it (`probe=False`) once it knows the table has states.
    if probe:
        any_state = f"SELECT 1 FROM `{SIDE_TABLE}` WHERE table_name = %s LIMIT 1"
        if conn.exec_driver_sql(any_state, (table,)).first() is None:
            return found
    by_hash = {pk_hash(k): k for k in keys}
    for part in chunks(list(by_hash), _LOOKUP_CHUNK):
        sql = (
            f"SELECT pk_hash, deleted, version, ts_ms FROM `{SIDE_TABLE}` "
            f"WHERE table_name = %s AND pk_hash IN ({', '.join(['%s'] * len(part))})"
        )
        for digest, deleted, version, ts_ms in conn.exec_driver_sql(sql, (table, *part)):
            state = StoredState("delete" if deleted else "upsert", version, int(ts_ms))
            found[by_hash[bytes(digest)]] = state
    return found


def write_states(conn: Connection, table: str, states: Mapping[str, StoredState]) -> None:
    if not states:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows: list[tuple[Any, ...]] = [
        (table, pk_hash(k), k, s.op == "delete", s.version, s.ts_ms, now) for k, s in states.items()
    ]
    conn.exec_driver_sql(
        f"INSERT INTO `{SIDE_TABLE}` "
        "(table_name, pk_hash, pk_json, deleted, version, ts_ms, changed_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
        "deleted = VALUES(deleted), version = VALUES(version), ts_ms = VALUES(ts_ms), "
        "changed_at = VALUES(changed_at)",
        rows,
    )


def clear_states(conn: Connection, table: str, keys: Iterable[str]) -> None:
    hashes = [pk_hash(k) for k in keys]
    for part in chunks(hashes, _LOOKUP_CHUNK):
        conn.exec_driver_sql(
            f"DELETE FROM `{SIDE_TABLE}` WHERE table_name = %s "
            f"AND pk_hash IN ({', '.join(['%s'] * len(part))})",
            (table, *part),
        )


def prune_tombstones(engine: Engine, retention_hours: float, now: datetime | None = None) -> int:
    """Delete tombstones older than the retention, in small transactions; returns the count."""
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    cutoff = moment - timedelta(hours=retention_hours)
    total = 0
    while True:
        with engine.begin() as conn:
            result = conn.execute(
                sa.text(
                    f"DELETE FROM `{SIDE_TABLE}` WHERE deleted = 1 AND changed_at < :cutoff "
                    f"LIMIT {_PRUNE_CHUNK}"
                ),
                {"cutoff": cutoff},
            )
        total += result.rowcount
        if result.rowcount < _PRUNE_CHUNK:
            return total
