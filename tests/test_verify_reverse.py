"""verify --reverse: MySQL is the truth after cut-over; --fix re-emits MySQL's rows as
reverse events (never a write to D1)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.simple_mapping import versioned_table
from tests.test_status_reverse import cli_env
from tests.topic_reader import read_topic
from worker.cli.main import app
from worker.config import Settings
from worker.db import create_target_engine
from worker.envelope import decode_event
from worker.kafka import admin_client
from worker.schema.ddl import apply_mapping
from worker.schema.writer import write_mapping
from worker.topics import ensure_topics, reverse_topic_for
from worker.verify.record import last_run

pytestmark = pytest.mark.integration

MAPPING = versioned_table("note", body="text")
BASE_MS = 1_767_000_000_000  # 2025-12-29 09:20:00 UTC


def test_row_only_in_mysql_is_missing_and_fix_re_emits_it_as_a_reverse_event(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A row the app wrote to MySQL after cut-over is "missing" (in D1), a row only D1 has is
    "extra"; --fix emits MySQL's rows (source representation) for the missing and the
    mismatched key, and a delete for the extra one."""
    source, mapping = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute('CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, "updatedAt" INTEGER)')
        conn.executemany(
            "INSERT INTO note VALUES (?, ?, ?)",
            [("n1", "same", BASE_MS), ("n2", "stale", BASE_MS), ("old", "gone", BASE_MS)],
        )
    write_mapping(MAPPING, mapping)
    settings = make_settings(source_path=source, mapping_path=mapping)
    engine = create_target_engine(settings.target_url.get_secret_value(), pool_size=1)
    apply_mapping(engine, MAPPING)
    same = datetime(2025, 12, 29, 9, 20)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO note (id, body, updatedAt) VALUES (:id, :body, :at)"),
            [
                {"id": "n1", "body": "same", "at": same},
                {"id": "n2", "body": "same", "at": same},
                {"id": "new", "body": "after cut-over", "at": datetime(2026, 1, 2, 3, 4, 5, 6000)},
            ],
        )
    ensure_topics(
        admin_client(settings.kafka_bootstrap),
        settings.topic_prefix,
        ["note"],
        1,
        1,
        topic_of=reverse_topic_for,
    )
    env = cli_env(settings)
    args = ["verify", "--reverse", "--json", "--settle-seconds", "0"]

    result = CliRunner().invoke(app, [*args, "--fix"], env=env)
    assert result.exit_code == 1, result.stdout
    body = json.loads(result.stdout)
    report = body["tables"][0]
    assert (report["missing_in_d1"], report["extra_in_d1"], report["mismatched"]) == (1, 1, 1)
    assert report["samples"]["missing_in_d1"] == [["new"]]
    assert report["samples"]["extra_in_d1"] == [["old"]]
    assert body["fix_events"] == 3
    assert last_run(engine) is None  # the forward cut-over's evidence is not touched

    messages = read_topic(
        settings.kafka_bootstrap, reverse_topic_for(settings.topic_prefix, "note")
    )
    events = [decode_event(value) for _key, value in messages if value is not None]
    upserts = {e.key["id"]: e.row for e in events if e.op == "upsert"}
    assert upserts == {
        "new": {"id": "new", "body": "after cut-over", "updatedAt": 1_767_323_045_006},
        "n2": {"id": "n2", "body": "same", "updatedAt": BASE_MS},
    }
    [delete] = [e for e in events if e.op == "delete"]
    assert (delete.key, delete.row) == ({"id": "old"}, None)
    assert {e.origin for e in events} == {"reverse"}
    assert [v for _k, v in messages].count(None) == 1  # the delete's tombstone
    with sqlite3.connect(source) as conn:  # D1 itself untouched: the D1 sink applies them
        assert conn.execute("SELECT count(*) FROM note").fetchone() == (3,)
    engine.dispose()
