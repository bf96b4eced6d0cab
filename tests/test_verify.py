"""verify against a real MariaDB: clean when equal, every corruption in its right category."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from consumers.loop import run_until_caught_up
from worker.config import Settings
from worker.db import create_target_engine
from worker.kafka import admin_client
from worker.schema.convert import convert_row
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping, load_mapping
from worker.sources.sqlite import SqliteSource
from worker.topics import ensure_topics
from worker.verify.runner import TableReport, verifier_for

pytestmark = pytest.mark.integration

MAPPING_TOML = """
[tables.user]
primary_key = ["id"]
version_columns = ["updatedAt"]

[tables.user.columns.id]
type = "string(40)"
nullable = false
[tables.user.columns.firstName]
type = "string(100)"
[tables.user.columns.profile]
type = "json"
[tables.user.columns.isActive]
type = "boolean"
nullable = false
[tables.user.columns.createdAt]
type = "timestamp_s"
nullable = false
[tables.user.columns.updatedAt]
type = "timestamp_s"
nullable = false
"""
ROWS = 120


def make_source(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE user (id text PRIMARY KEY NOT NULL, firstName text, profile text, "
        "isActive integer NOT NULL, createdAt integer NOT NULL, updatedAt integer NOT NULL)"
    )
    conn.executemany(
        "INSERT INTO user VALUES (?,?,?,?,?,?)",
        [
            (
                f"usr_{i:04d}",
                f"Name {i} 🚀",
                json.dumps({"plan": "pro", "tags": [i, i + 1]}),
                i % 2,
                1_700_000_000 + i,
                1_700_000_500 + i,
            )
            for i in range(ROWS)
        ],
    )
    conn.commit()
    conn.close()


@pytest.fixture
def replicated(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> tuple[Settings, Mapping, sa.Engine]:
    """A source file, its mapping, and a target holding exactly the converted rows."""
    source = tmp_path / "source.sqlite"
    make_source(source)
    (tmp_path / "mapping.toml").write_text(MAPPING_TOML)
    settings = make_settings(source_path=source)
    mapping = load_mapping(settings.mapping_path)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, mapping)
    table = mapping.table("user")
    rows = SqliteSource(source).query("SELECT * FROM user")
    with engine.begin() as conn:
        conn.execute(
            sa.table("user", *(sa.column(c) for c in table.column_names)).insert(),
            [convert_row(table, r) for r in rows],
        )
    return settings, mapping, engine


CORRUPTIONS = (
    "DELETE FROM `user` WHERE id = 'usr_0003'",  # missing
    "INSERT INTO `user` VALUES ('usr_9999', 'ghost', NULL, 1, "  # extra
    "'2024-01-01 00:00:00', '2024-01-01 00:00:00')",
    "UPDATE `user` SET firstName = 'changed' WHERE id = 'usr_0010'",  # changed column
    # JSON key order and spacing only: must still match
    """UPDATE `user` SET profile = '{"tags": [20, 21], "plan": "pro"}' WHERE id = 'usr_0020'""",
    "UPDATE `user` SET createdAt = createdAt + INTERVAL 1 SECOND WHERE id = 'usr_0030'",
    "UPDATE `user` SET id = 'USR_0040' WHERE id = 'usr_0040'",  # case-changed key
)


def corrupt(engine: sa.Engine) -> None:
    """Damage the target in every way verify must tell apart."""
    with engine.begin() as conn:
        for statement in CORRUPTIONS:
            conn.exec_driver_sql(statement)


def run_verify(
    settings: Settings, mapping: Mapping, engine: sa.Engine, *, checksums: bool = True
) -> tuple[TableReport, int]:
    """The report, and how many chunks had to be read in full."""
    source = SqliteSource(settings.source_path)
    table = mapping.table("user")
    verifier = verifier_for(
        table, source, engine, checksums=checksums, chunk_rows=25, settle_seconds=0
    )
    return verifier.run(), verifier.diffed_chunks


@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "row-diff"])
def test_equal_source_and_target_verify_clean(
    replicated: tuple[Settings, Mapping, sa.Engine], checksums: bool
) -> None:
    """Every row matches; nothing missing, extra or mismatched (either comparison path)."""
    report, diffed = run_verify(*replicated, checksums=checksums)
    assert report.clean
    assert (report.processed, report.matching) == (ROWS, ROWS)
    # With checksums no clean chunk is read in full; without, all 5 chunks (4 x 25 + 20) are.
    assert diffed == (0 if checksums else 5)


@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "row-diff"])
def test_every_corruption_lands_in_its_category(
    replicated: tuple[Settings, Mapping, sa.Engine], checksums: bool
) -> None:
    """missing / extra / changed column / JSON re-ordered / +1 s / case-changed key."""
    settings, mapping, engine = replicated
    corrupt(engine)
    report, diffed = run_verify(settings, mapping, engine, checksums=checksums)
    assert sorted(report.missing_keys) == [("usr_0003",), ("usr_0040",)]
    assert sorted(report.extra_keys) == [("USR_0040",), ("usr_9999",)]
    assert sorted(report.mismatched_keys) == [("usr_0010",), ("usr_0030",)]
    columns = {tuple(s["key"]): s["columns"] for s in report.samples["mismatched"]}
    assert columns == {("usr_0010",): ["firstName"], ("usr_0030",): ["createdAt"]}
    # 2 missing + 2 mismatched; usr_0020 (JSON key order only) still matches.
    assert report.matching == ROWS - 4
    assert report.processed == ROWS + 2
    # Corruptions sit in chunks 0 (0003, 0010, 0020), 1 (0030, 0040) and the open last one.
    assert diffed == (3 if checksums else 5)
    assert not report.clean


def test_a_differing_chunk_is_diffed_over_its_checksummed_range(
    replicated: tuple[Settings, Mapping, sa.Engine],
) -> None:
    """Rows deleted (on both sides) between a chunk's checksum and its row diff: the diff
    covers exactly the checksummed key range, so the next chunk's rows are not pulled in
    and counted twice."""
    settings, mapping, engine = replicated
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE `user` SET firstName = 'changed' WHERE id = 'usr_0010'")
    source = SqliteSource(settings.source_path)
    verifier = verifier_for(
        mapping.table("user"), source, engine, checksums=True, chunk_rows=25, settle_seconds=0
    )
    assert verifier.checksums is not None
    renderer = verifier.checksums[0]
    render = renderer.after
    gone = [f"usr_{i:04d}" for i in range(1, 6)]

    def render_then_delete(*args: object, **kwargs: object) -> object:
        rendered = render(*args, **kwargs)  # type: ignore[arg-type]
        if args[0] is None:  # just after chunk 0 was checksummed
            with sqlite3.connect(settings.source_path) as conn:
                conn.executemany('DELETE FROM "user" WHERE id = ?', [(k,) for k in gone])
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM `user` WHERE id IN %(ids)s", {"ids": gone})
        return rendered

    renderer.after = render_then_delete  # type: ignore[method-assign]
    report = verifier.run()
    assert report.mismatched_keys == [("usr_0010",)]
    assert (report.processed, report.matching) == (ROWS - len(gone), ROWS - len(gone) - 1)


def test_cli_exit_codes_and_json(replicated: tuple[Settings, Mapping, sa.Engine]) -> None:
    """`d1cdc verify --json`: exit 0 clean, 1 with differences, 2 on a broken mapping."""
    settings, _mapping, engine = replicated
    env = {
        **os.environ,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_SOURCE_PATH": str(settings.source_path),
        "D1CDC_MAPPING_PATH": str(settings.mapping_path),
        "D1CDC_LOG_FORMAT": "json",
    }

    def verify() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "worker", "verify", "--json", "--settle-seconds", "0"]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    clean = verify()
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["tables"][0]["matching"] == ROWS
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM `user` WHERE id = 'usr_0007'")
    dirty = verify()
    assert dirty.returncode == 1
    assert json.loads(dirty.stdout)["tables"][0]["samples"]["missing_in_target"] == [["usr_0007"]]
    env["D1CDC_MAPPING_PATH"] = str(settings.source_path.parent / "missing.toml")
    broken = verify()
    assert broken.returncode == 2
    assert "mapping file" in broken.stderr


def test_fix_repairs_every_corruption_through_kafka(
    replicated: tuple[Settings, Mapping, sa.Engine],
) -> None:
    """verify --fix re-emits rows (origin 'fix'); once consumed, a second verify is clean."""
    settings, mapping, engine = replicated
    corrupt(engine)
    ensure_topics(admin_client(settings.kafka_bootstrap), settings.topic_prefix, ["user"], 1, 1)
    env = {
        **os.environ,
        "D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_SOURCE_PATH": str(settings.source_path),
        "D1CDC_MAPPING_PATH": str(settings.mapping_path),
        "D1CDC_LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-m", "worker", "verify", "--json", "--settle-seconds", "0", "--fix"]
    fixed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert fixed.returncode == 1, fixed.stderr
    assert json.loads(fixed.stdout)["fix_events"] == 6  # 2 missing + 2 mismatched + 2 extra
    outcome = run_until_caught_up(settings, mapping, timeout_s=120)
    assert outcome.caught_up and outcome.dead_letters == 0
    report, _ = run_verify(settings, mapping, engine)
    assert report.clean, report.as_dict()
    assert report.matching == ROWS
