"""Dead-letter hygiene (issue 11, defect 7).

- `dlq discard --reason` ends a dead letter for good. The reason is recorded, and
  `status` stops counting it. Before, a permanent dead letter kept status NOT READY forever.
- `dlq replay` checks the source first. An upsert of a row that the source has since deleted
  (by a write that bypassed the shim, so no delete event exists) is not resurrected.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import tomlkit
from typer.testing import CliRunner

from consumers.dlq import DISCARDS_TABLE, read_dead_letters
from consumers.loop import run_until_caught_up
from tests.consume_helpers import MAPPING, create_topics, prepare_target, produce, rows, tag_event
from worker.cli.main import app
from worker.cli.status_report import dlq_ack_group
from worker.config import Settings
from worker.db import create_target_engine
from worker.envelope import new_event
from worker.schema.mapping import mapping_from_dict

pytestmark = pytest.mark.integration

FIXED = {
    "tables": {
        "tag": {
            "primary_key": ["id"],
            "columns": {
                "id": {"type": "string(20)"},
                "label": {"type": "text"},
                "extra": {"type": "bigint"},
            },
        }
    }
}


@pytest.fixture
def dead(make_settings: Callable[..., Settings], kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Three tag events dead-lettered for a column the mapping lacks (`extra`)."""
    settings = make_settings(batch_size=50)
    create_topics(kafka_bootstrap, settings.topic_prefix, ["user", "tag"])
    prepare_target(settings.target_url.get_secret_value()).dispose()
    events = [
        new_event("tag", "upsert", {"id": i}, {"id": i, "label": i, "extra": 1}, ts_ms=5)
        for i in ("kept", "gone", "third")
    ]
    produce(kafka_bootstrap, settings.topic_prefix, [*events, tag_event("ok", 1)])
    run_until_caught_up(settings, MAPPING, timeout_s=90)
    assert len(pending(settings)) == 3
    return settings


def pending(settings: Settings) -> list[object]:
    return list(
        read_dead_letters(
            settings.kafka_bootstrap,
            f"{settings.topic_prefix}._dlq",
            pending_for=dlq_ack_group(settings.group_id),
        )
    )


def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    source, mapping = tmp_path / "d1.sqlite", tmp_path / "fixed.toml"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE tag (id TEXT PRIMARY KEY, label TEXT, extra INTEGER)")
        # "gone" was deleted at the source by a write that bypassed the shim.
        conn.executemany("INSERT INTO tag VALUES (?, ?, 1)", [("kept", "kept"), ("third", "t")])
    mapping.write_text(tomlkit.dumps(FIXED))
    return {
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_GROUP_ID": settings.group_id,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_SOURCE_PATH": str(source),
        "D1CDC_MAPPING_PATH": str(mapping),
    }


def discards(settings: Settings) -> list[tuple[str, str]]:
    engine = create_target_engine(settings.target_url.get_secret_value())
    try:
        with engine.connect() as conn:
            return [
                (str(r[0]), str(r[1]))
                for r in conn.execute(
                    sa.text(f"SELECT topic, discard_reason FROM `{DISCARDS_TABLE}` ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def test_replay_checks_the_source_and_never_resurrects_a_deleted_row(
    dead: Settings, tmp_path: Path
) -> None:
    env = cli_env(dead, tmp_path)
    engine = create_target_engine(dead.target_url.get_secret_value())
    with engine.begin() as conn:  # the fix: the column exists now
        conn.exec_driver_sql("ALTER TABLE `tag` ADD COLUMN `extra` BIGINT NULL")
    engine.dispose()
    result = CliRunner().invoke(app, ["dlq", "replay"], env=env)
    assert result.exit_code == 0, result.output
    assert "replayed 2 event(s); skipped 1 the source has overtaken" in result.output
    run_until_caught_up(dead, mapping_from_dict(FIXED), timeout_s=90)
    engine = create_target_engine(dead.target_url.get_secret_value())
    tags = rows(engine, "tag")
    engine.dispose()
    assert {"kept", "third", "ok"} <= set(tags) and "gone" not in tags
    assert discards(dead) == [
        (f"{dead.topic_prefix}.tag", "replay skipped: the source no longer has this row")
    ]
    assert pending(dead) == []


def test_discard_records_the_reason_and_clears_status(dead: Settings, tmp_path: Path) -> None:
    env = cli_env(dead, tmp_path)
    empty = CliRunner().invoke(app, ["dlq", "discard", "--reason", " "], env=env)
    assert empty.exit_code != 0
    result = CliRunner().invoke(
        app, ["dlq", "discard", "--reason", "test data, not worth keeping"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "discarded 3 dead letter(s)" in result.output
    assert discards(dead) == [(f"{dead.topic_prefix}.tag", "test data, not worth keeping")] * 3
    assert pending(dead) == []
    status = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert '"dlq_pending": 0' in status.output
