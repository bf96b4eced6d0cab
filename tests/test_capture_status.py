"""`status`, `doctor` and readiness show D1 capture (issue 12, item 4).

They report three things:
- whether the triggers are present and current;
- the change-log depth;
- the relay lag.

Status is NOT READY while the triggers drift, or while the relay is behind.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.simple_mapping import versioned_table
from worker.cli.main import app
from worker.config import Settings
from worker.schema.writer import write_mapping

pytestmark = pytest.mark.integration

MAPPING = versioned_table("note", body="text")


def test_status_and_doctor_report_capture_and_gate_readiness_on_it(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source, mapping = tmp_path / "d1.sqlite", tmp_path / "mapping.toml"
    with sqlite3.connect(source) as conn:
        conn.execute('CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, "updatedAt" INTEGER)')
    write_mapping(MAPPING, mapping)
    settings = make_settings(source_path=source, mapping_path=mapping)
    env = {
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_GROUP_ID": settings.group_id,
        "D1CDC_SOURCE_PATH": str(source),
        "D1CDC_MAPPING_PATH": str(mapping),
    }
    runner = CliRunner()

    def status() -> dict[str, object]:
        result = runner.invoke(app, ["status", "--json"], env=env)
        body: dict[str, object] = json.loads(result.stdout)
        return body

    before = status()
    assert before["capture"] is None  # not installed: shim and backfill only
    assert not any("capture" in str(r) for r in before["reasons"])  # type: ignore[attr-defined]

    assert runner.invoke(app, ["capture", "install"], env=env).exit_code == 0
    with sqlite3.connect(source) as conn:
        conn.execute("INSERT INTO note VALUES ('n1', 'x', 1760000000000)")
    current = status()
    assert current["capture"] == {
        "problems": [],
        "log_depth": 1,
        "relay_lag_s": pytest.approx(0, abs=5),
        "error": None,
    }
    doctor = runner.invoke(app, ["doctor", "--only", "capture"], env=env)
    assert doctor.exit_code == 0 and "triggers current; change log 1 entries" in doctor.stdout

    # The relay is behind: the oldest unshipped entry is a minute old.
    with sqlite3.connect(source) as conn:
        old = int(time.time() * 1000) - 60_000
        conn.execute('UPDATE "_d1cdc_changes" SET ts_ms = ?', (old,))
    reasons = [str(r) for r in status()["reasons"]]  # type: ignore[attr-defined]
    assert any(r.startswith("relay behind: 1 change-log entries, the oldest 6") for r in reasons)

    # A drizzle-kit rebuild dropped the triggers: drift, not ready, doctor fails.
    with sqlite3.connect(source) as conn:
        conn.execute('DROP TRIGGER "_d1cdc_note_upd"')
    reasons = [str(r) for r in status()["reasons"]]  # type: ignore[attr-defined]
    assert any(r.startswith("capture drift: 1 problem(s), e.g. note:") for r in reasons), reasons
    doctor = runner.invoke(app, ["doctor", "--only", "capture"], env=env)
    assert doctor.exit_code == 1 and "FAIL capture" in doctor.stdout
