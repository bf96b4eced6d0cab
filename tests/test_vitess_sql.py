"""Every statement d1cdc sends to the target parses with Vitess's own SQL parser.

The statements are not copies: MariaDB's general log records what the real code paths
put on the wire while they run —
- `d1cdc demo` (schema apply, consume, backfill, verify and its run record, status) on
  the demo mapping, as child processes;
- the sink, the verifier (with a difference, so checksums, diffs and re-checks all run)
  and the status report on the edge-case mapping (reserved words, a backtick in a name,
  composite keys, every logical type), in this process.
The MySQL-dialect DDL (what PlanetScale gets; MariaDB cannot run its collation) comes from
the same generator, for both mappings. Every distinct statement goes to
`ops/sqlparse.sh` (vitess.io/vitess go/vt/sqlparser, MySQL 8.0 grammar).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from consumers.change import MessageRef
from consumers.coalesce import coalesce_batch
from consumers.decode import to_change
from consumers.row_versions import SIDE_TABLE
from consumers.sink import MySQLSink
from tests.edge_mapping import edge_mapping
from worker.cli.status_report import collect_status
from worker.config import load_settings
from worker.db import create_target_engine
from worker.envelope import encode_event, new_event
from worker.schema.ddl import apply_mapping, ddl_for_mapping
from worker.schema.infer import infer_mapping
from worker.schema.introspect import introspect, open_readonly
from worker.schema.mapping import Mapping
from worker.sources.sqlite import SqliteSource
from worker.verify.record import RUNS_TABLE, record_run
from worker.verify.runner import verifier_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent


@contextmanager
def general_log(server_url: str) -> Iterator[list[str]]:
    """Every query the server receives inside the block (not this logger's own)."""
    statements: list[str] = []
    engine = create_target_engine(server_url, pool_size=1)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET GLOBAL log_output = 'TABLE'")
        conn.exec_driver_sql("TRUNCATE TABLE mysql.general_log")
        own = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        conn.exec_driver_sql("SET GLOBAL general_log = 'ON'")
        try:
            yield statements
        finally:
            conn.exec_driver_sql("SET GLOBAL general_log = 'OFF'")
            rows = conn.exec_driver_sql(
                "SELECT argument FROM mysql.general_log "
                "WHERE command_type IN ('Query', 'Execute') AND thread_id <> %s "
                "ORDER BY event_time",
                (own,),
            ).scalars()
            statements.extend(_text(raw) for raw in rows)
            conn.exec_driver_sql("TRUNCATE TABLE mysql.general_log")
    engine.dispose()


def _text(raw: bytes | str) -> str:
    """The statement as text. Blob literals may hold bytes that are not UTF-8; latin-1
    keeps quotes and backslashes where they were, which is all the parser looks at."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_LITERAL = re.compile(
    r"_binary'(?:[^'\\]|\\.|'')*'|'(?:[^'\\]|\\.|'')*'|\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b"
)
_TUPLES = re.compile(r"\((?:\?, )*\?\)(?:, \((?:\?, )*\?\))+")


def shape(statement: str) -> str:
    """The statement with literals as ? and repeated value tuples as one: its kind."""
    text = _LITERAL.sub("?", " ".join(statement.split()))
    text = re.sub(r"\bIN \((?:\?, )*\?\)", "IN (…)", text)
    return _TUPLES.sub("(…)", text)


def run_demo(server_url: str, kafka: str, workdir: Path, database: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("D1CDC_")}
    env |= {"D1CDC_KAFKA_BOOTSTRAP": kafka, "D1CDC_TARGET_URL": server_url}
    cmd = [sys.executable, "-m", "worker", "demo", "--scale", "0.05", "--seconds", "2"]
    cmd += ["--rate", "20", "--workdir", str(workdir), "--database", database]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


EDGE_SOURCE_DDL = (
    'CREATE TABLE "order" ("key" TEXT NOT NULL, "select" INTEGER NOT NULL, "we`ird col" TEXT, '
    '"index" INTEGER, "isActive" INTEGER NOT NULL, "doc" TEXT, "price" TEXT, "ratio" REAL, '
    '"avatar" BLOB, "bornAt" TEXT, "seenAtMs" INTEGER, "updatedAt" INTEGER NOT NULL, '
    '"updateCounter" INTEGER NOT NULL, PRIMARY KEY ("key", "select"))',
    'CREATE TABLE "limit" ("id" TEXT PRIMARY KEY, "orderKey" TEXT, "orderSelect" INTEGER, '
    '"updatedAt" INTEGER NOT NULL)',
)


def edge_row(i: int, version: int) -> dict[str, Any]:
    return {
        "key": f"o'{i}\\",  # a quote and a backslash in a key
        "select": 2**62 + i,
        "we`ird col": f"naïve 🧪 {i}",
        "index": i,
        "isActive": i % 2,
        "doc": json.dumps({"n": i, "tags": ["a", "b"], "nested": {"deep": [1, 2.5]}}),
        "price": f"{i}.125000",
        "ratio": 1 / (i + 3),
        "avatar": bytes(range(i, i + 40)),  # not UTF-8
        "bornAt": "2024-02-29 23:59:59",
        "seenAtMs": 1_760_000_000_123 + i,
        "updatedAt": 1_760_000_000 + version,
        "updateCounter": version,
    }


def exercise_edge_mapping(target_url: str, kafka: str, tmp_path: Path) -> None:
    """The sink, verifier and status report on the edge mapping, against the real target."""
    mapping = edge_mapping()
    db = tmp_path / "edge.sqlite"
    with sqlite3.connect(db) as conn:
        for ddl in EDGE_SOURCE_DDL:
            conn.execute(ddl)
    engine = create_target_engine(target_url)
    offsets = iter(range(1_000_000))

    def change(table: str, op: str, key: dict[str, Any], row: dict[str, Any] | None) -> Any:
        ts = 1_760_000_000_000 + next(offsets)
        event_key, value = encode_event(new_event(table, op, key, row, ts_ms=ts))  # type: ignore[arg-type]
        return to_change(MessageRef(f"edge.{table}", 0, next(offsets), event_key, value), mapping)

    try:
        apply_mapping(engine, mapping)
        sink = MySQLSink(engine, mapping, rows_per_statement=3, rows_per_transaction=7)
        rows = [edge_row(i, 5) for i in range(8)]
        with sqlite3.connect(db) as conn:
            for row in rows:
                conn.execute(
                    f'INSERT INTO "order" VALUES ({", ".join("?" * len(row))})', list(row.values())
                )
            conn.execute(
                'INSERT INTO "limit" VALUES (?, ?, ?, ?)', ("l1", "o'0\\", 2**62, 1_760_000_000_000)
            )
        upserts = [
            change("order", "upsert", {"key": r["key"], "select": r["select"]}, r) for r in rows
        ]
        limit = {
            "id": "l1",
            "orderKey": "o'0\\",
            "orderSelect": 2**62,
            "updatedAt": 1_760_000_000_000,
        }
        sink.apply(coalesce_batch([*upserts, change("limit", "upsert", {"id": "l1"}, limit)]))
        # A guarded delete (with the before-image, leaving a tombstone), an unguarded one,
        # and a stale update that the version guard must refuse.
        gone = rows[7]
        with sqlite3.connect(db) as conn:
            conn.execute('DELETE FROM "order" WHERE "key" = ?', (gone["key"],))
        key7 = {"key": gone["key"], "select": gone["select"]}
        stale = edge_row(1, 4)
        sink.apply(
            coalesce_batch(
                [
                    change("order", "delete", key7, gone),
                    change(
                        "order", "upsert", {"key": stale["key"], "select": stale["select"]}, stale
                    ),
                ]
            )
        )
        sink.apply(coalesce_batch([change("limit", "delete", {"id": "nobody"}, None)]))
        with engine.begin() as conn:  # a difference for verify to find and re-check
            conn.exec_driver_sql("UPDATE `order` SET `index` = 99 WHERE `index` = 2")
        source = SqliteSource(db)
        try:
            reports = [
                verifier_for(t, source, engine, settle_seconds=0).run()
                for t in mapping.in_level_order()
            ]
        finally:
            source.close()
        assert sum(r.mismatched for r in reports) == 1, [r.as_dict() for r in reports]
        record_run(engine, reports)
        settings = load_settings(
            None,
            kafka_bootstrap=kafka,
            target_url=target_url,
            topic_prefix="edge",
            group_id="edge-apply",
        )
        collect_status(settings, list(mapping.tables), engine)
    finally:
        engine.dispose()


def mysql_ddl(mapping: Mapping) -> list[str]:
    return ddl_for_mapping(mapping, dialect="mysql") + ddl_for_mapping(
        mapping, dialect="mysql", foreign_keys=True
    )


def test_every_statement_sent_to_the_target_parses_with_vitess(
    tmp_path: Path, kafka_bootstrap: str, mysql_server_url: str, target_url: str, unique_name: str
) -> None:
    demo_db = f"{unique_name}_demo"
    with general_log(mysql_server_url) as sent:
        try:
            run_demo(mysql_server_url, kafka_bootstrap, tmp_path / "demo", demo_db)
            exercise_edge_mapping(target_url, kafka_bootstrap, tmp_path)
        finally:
            engine = create_target_engine(mysql_server_url, pool_size=1)
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{demo_db}`")
            engine.dispose()
    with open_readonly(tmp_path / "demo" / "d1-demo.sqlite") as conn:
        demo_mapping = infer_mapping(conn, introspect(conn)).mapping
    generated = mysql_ddl(demo_mapping) + mysql_ddl(edge_mapping())

    # Each code path left its statements; a path that sent nothing would fail here.
    joined = "\n".join(sent)
    for expected in (
        "CREATE TABLE IF NOT EXISTS `order`",
        "INSERT INTO `order`",
        "ON DUPLICATE KEY UPDATE",
        "DELETE FROM `order`",
        f"`{SIDE_TABLE}`",
        f"`{RUNS_TABLE}`",
        "CREATE TABLE IF NOT EXISTS `user`",
        "INSERT INTO `user`",
    ):
        assert expected in joined, f"no statement containing {expected!r} was captured"

    statements = sorted(set(sent) | set(generated))
    shapes = {shape(s) for s in statements}
    feed = "".join(json.dumps({"id": f"s{i}", "sql": s}) + "\n" for i, s in enumerate(statements))
    result = subprocess.run(
        ["bash", str(REPO / "ops" / "sqlparse.sh")],
        input=feed,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    summary, failures = lines[-1], lines[:-1]
    print(
        f"vitess sqlparser: {summary['checked']} statements ({len(shapes)} distinct kinds), "
        f"{summary['failed']} failed"
    )
    assert summary == {"checked": len(statements), "failed": 0}, failures[:5]
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(shapes) >= 20


def test_the_parser_rejects_what_vitess_cannot_parse() -> None:
    """The check can fail: a MariaDB-only statement and a typo are reported, exit 1."""
    feed = "".join(
        json.dumps({"id": name, "sql": sql}) + "\n"
        for name, sql in (
            ("ok", "SELECT 1"),
            ("typo", "SELEC 1"),
            ("mariadb-only", "CREATE OR REPLACE SEQUENCE s START WITH 1"),
        )
    )
    result = subprocess.run(
        ["bash", str(REPO / "ops" / "sqlparse.sh")],
        input=feed,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert lines[-1] == {"checked": 3, "failed": 2}
    assert {line["id"] for line in lines[:-1]} == {"typo", "mariadb-only"}
