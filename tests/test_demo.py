"""Specification of worker.demo: the demo D1 database and its ground truth."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from worker.db import create_target_engine
from worker.demo import APPENDIX_LEVELS, generate_demo_db, ground_truth_mapping
from worker.errors import ConfigError
from worker.schema.convert import convert_row
from worker.schema.ddl import apply_mapping
from worker.schema.introspect import introspect, introspect_file, open_readonly
from worker.schema.order import dependency_levels


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    generate_demo_db(path, scale=1.0, seed=0)
    return path


def _digest(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def test_levels_from_foreign_keys_equal_the_seed_appendix(demo_db: Path) -> None:
    """The demo's FKs reproduce §10 of the migration plan level by level; the only note is
    the deliberate self-reference team.parentTeamId."""
    tables = introspect_file(demo_db)
    report = dependency_levels({t.name: [fk.ref_table for fk in t.foreign_keys] for t in tables})
    assert report.by_level() == [sorted(level) for level in APPENDIX_LEVELS]
    assert report.self_references == ["team"]
    assert report.broken_edges == []


def test_internal_tables_exist_but_are_skipped(demo_db: Path) -> None:
    """d1_migrations and _cf_KV are in the file, and introspection leaves them out."""
    with open_readonly(demo_db) as conn:
        everything = {t.name for t in introspect(conn, skip_internal=False)}
        selected = {t.name for t in introspect(conn)}
    assert {"d1_migrations", "_cf_KV"} <= everything
    assert not {"d1_migrations", "_cf_KV"} & selected
    assert len(selected) == sum(len(level) for level in APPENDIX_LEVELS)


def test_same_seed_gives_the_same_database_and_another_seed_does_not(tmp_path: Path) -> None:
    """Generation is a pure function of (scale, seed)."""
    paths = [tmp_path / f"{name}.sqlite" for name in ("a", "b", "c")]
    generate_demo_db(paths[0], scale=0.2, seed=5)
    generate_demo_db(paths[1], scale=0.2, seed=5)
    generate_demo_db(paths[2], scale=0.2, seed=6)
    assert _digest(paths[0]) == _digest(paths[1]) != _digest(paths[2])


def test_row_count_scales_with_scale(tmp_path: Path) -> None:
    """Twice the scale gives about twice the rows (every table keeps at least one)."""
    small = generate_demo_db(tmp_path / "s.sqlite", scale=0.5).total_rows
    large = generate_demo_db(tmp_path / "l.sqlite", scale=1.0).total_rows
    assert 1_000 < small < large <= 10_000
    assert 1.8 < large / small < 2.2


def test_existing_file_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    """A second run refuses to clobber the file unless asked to."""
    path = tmp_path / "demo.sqlite"
    generate_demo_db(path, scale=0.05)
    with pytest.raises(ConfigError, match="--force"):
        generate_demo_db(path, scale=0.05)
    generate_demo_db(path, scale=0.05, overwrite=True)


def test_data_is_stored_the_way_drizzle_stores_it(demo_db: Path) -> None:
    """Prefixed text ids, seconds and ms integers, 0/1 flags, JSON text, CURRENT_TIMESTAMP text,
    blobs, pre-1970 dates, integers above 2^53 and 4-byte characters are all present."""
    conn = sqlite3.connect(demo_db)

    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    try:
        assert one("SELECT count(*) FROM user WHERE id NOT LIKE 'usr\\_%' ESCAPE '\\'") == 0
        assert one("SELECT min(createdAt) FROM user") > 1_600_000_000
        assert one("SELECT min(lastActiveAt) FROM user") > 1_600_000_000_000
        assert one("SELECT count(DISTINCT isPersonalTeam) FROM team") == 2
        assert one("SELECT max(isPersonalTeam) FROM team") == 1
        assert one("SELECT count(*) FROM team WHERE settings > '' AND json_valid(settings) = 0") < 1
        assert one("SELECT count(*) FROM team WHERE settings > ''") > 0
        assert one("SELECT count(*) FROM notification WHERE typeof(sentAt) = 'text'") > 0
        assert one("SELECT count(*) FROM notification WHERE typeof(sentAt) = 'integer'") > 0
        assert one("SELECT typeof(publicKey) FROM passkey_credential LIMIT 1") == "blob"
        assert one("SELECT min(dateOfBirth) FROM user") < 0
        assert one("SELECT max(externalRef) FROM credit_transaction") > 2**53
        names = [r[0] for r in conn.execute("SELECT firstName FROM user WHERE firstName > ''")]
        assert any(any(ord(ch) > 0xFFFF for ch in name) for name in names)
    finally:
        conn.close()


def test_every_demo_row_converts_under_the_ground_truth(demo_db: Path) -> None:
    """The ground-truth mapping accepts every value the generator wrote."""
    mapping = ground_truth_mapping()
    conn = sqlite3.connect(demo_db)
    conn.row_factory = sqlite3.Row
    converted = 0
    try:
        for table in mapping.tables.values():
            for row in conn.execute(f'SELECT * FROM "{table.name}"'):
                convert_row(table, dict(row))
                converted += 1
    finally:
        conn.close()
    assert converted > 5_000  # scale 1.0 is ~5.8k rows: every one of them was converted


@pytest.mark.integration
def test_demo_ddl_applies_twice_and_converted_rows_insert_without_warnings(
    demo_db: Path, target_url: str
) -> None:
    """The demo's DDL applies cleanly on the real server, the second time changes nothing,
    and every converted row of every table inserts under strict mode with no warning."""
    mapping = ground_truth_mapping()
    engine = create_target_engine(target_url, pool_size=1)
    first = apply_mapping(engine, mapping)
    second = apply_mapping(engine, mapping)
    source = sqlite3.connect(demo_db)
    source.row_factory = sqlite3.Row
    warnings: list[tuple[str, object]] = []
    try:
        with engine.begin() as conn:
            for table in mapping.in_level_order():
                rows = [
                    convert_row(table, dict(r))
                    for r in source.execute(f'SELECT * FROM "{table.name}"')
                ]
                names = ", ".join(f"`{c}`" for c in table.columns)
                params = ", ".join(f":{c}" for c in table.columns)
                stmt = sa.text(f"INSERT INTO `{table.name}` ({names}) VALUES ({params})")
                # SHOW WARNINGS covers the last statement only: check after every small batch
                # (PyMySQL sends one multi-row INSERT per batch this size).
                for start in range(0, len(rows), 100):
                    conn.execute(stmt, rows[start : start + 100])
                    warnings += [(table.name, w) for w in conn.exec_driver_sql("SHOW WARNINGS")]
            score_rows = conn.execute(sa.text("SELECT count(*) FROM `score`")).scalar()
        expected_score_rows = source.execute("SELECT count(*) FROM score").fetchone()[0]
    finally:
        source.close()
        engine.dispose()
    assert len(first.created) == len(mapping.tables) and first.drift == []
    assert second.created == [] and second.drift == []
    assert warnings == []
    assert score_rows == expected_score_rows > 0
