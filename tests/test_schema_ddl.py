"""Specification of worker.schema.ddl: MySQL 8 / MariaDB DDL, idempotent apply, drift."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from worker.db import create_target_engine
from worker.errors import SchemaError
from worker.schema.convert import convert_row
from worker.schema.ddl import apply_mapping, create_table_sql, ddl_for_mapping
from worker.schema.mapping import Mapping, mapping_from_dict

MAPPING_DICT = {
    "tables": {
        "limit": {
            "primary_key": ["id"],
            "version_columns": ["updatedAt"],
            "level": 1,
            "columns": {
                "id": {"type": "string(32)", "nullable": False},
                "planId": {"type": "string(32)"},
                "name": {"type": "text", "nullable": False},
                "maxSeats": {"type": "integer"},
                "isActive": {"type": "boolean", "nullable": False},
                "settings": {"type": "json"},
                "price": {"type": "decimal(10,2)"},
                "ratio": {"type": "real"},
                "avatar": {"type": "blob"},
                "updatedAt": {"type": "timestamp_s", "nullable": False},
            },
            "indexes": [
                {"name": "limit_name_plan", "columns": ["planId"], "unique": False},
            ],
            "foreign_keys": [{"columns": ["planId"], "ref_table": "plan", "ref_columns": ["id"]}],
        },
        "plan": {
            "primary_key": ["id"],
            "columns": {
                "id": {"type": "string(32)", "nullable": False},
                "slug": {"type": "string(64)", "nullable": False},
            },
            "indexes": [{"name": "plan_slug_unique", "columns": ["slug"], "unique": True}],
        },
    }
}


def demo_mapping() -> Mapping:
    return mapping_from_dict(MAPPING_DICT)


# -- pure DDL -------------------------------------------------------------------------------


def test_every_identifier_is_quoted_including_reserved_words() -> None:
    """`limit` and `plan` are reserved words: they only appear backtick-quoted."""
    sql = create_table_sql(demo_mapping().table("limit"))
    assert "CREATE TABLE IF NOT EXISTS `limit`" in sql
    assert " limit " not in sql.lower().replace("`limit`", "")


def test_types_follow_the_type_table() -> None:
    """INT only where mapped; DATETIME(3), JSON, TINYINT(1), DECIMAL, DOUBLE, LONGBLOB."""
    sql = create_table_sql(demo_mapping().table("limit"))
    for fragment in (
        "`maxSeats` INT NULL",
        "`isActive` TINYINT(1) NOT NULL",
        "`settings` JSON NULL",
        "`price` DECIMAL(10,2) NULL",
        "`ratio` DOUBLE NULL",
        "`avatar` LONGBLOB NULL",
        "`updatedAt` DATETIME(3) NOT NULL",
        "`name` LONGTEXT NOT NULL",
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    ):
        assert fragment in sql


def test_key_and_unique_text_use_a_binary_no_pad_collation() -> None:
    """PK and UNIQUE VARCHARs are byte-compared; plain indexed ones keep the default."""
    mysql = create_table_sql(demo_mapping().table("plan"))
    assert "`id` VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin NOT NULL" in mysql
    assert "`slug` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin" in mysql
    maria = create_table_sql(demo_mapping().table("plan"), dialect="mariadb")
    assert "utf8mb4_nopad_bin" in maria and "0900" not in maria
    limit = create_table_sql(demo_mapping().table("limit"))
    assert "`planId` VARCHAR(32) NULL" in limit


def test_foreign_keys_only_on_request() -> None:
    """No FK constraints by default; foreign_keys=True emits them."""
    table = demo_mapping().table("limit")
    assert "FOREIGN KEY" not in create_table_sql(table)
    assert "FOREIGN KEY (`planId`) REFERENCES `plan` (`id`)" in create_table_sql(
        table, foreign_keys=True
    )


def test_indexed_text_column_is_a_schema_error() -> None:
    """A TEXT key would need a prefix, which PlanetScale rejects: the mapping must say string(n)."""
    data = {
        "tables": {
            "t": {
                "primary_key": ["id"],
                "columns": {"id": {"type": "text", "nullable": False}},
            }
        }
    }
    with pytest.raises(SchemaError, match="string\\(n\\)"):
        create_table_sql(mapping_from_dict(data).table("t"))


def test_ddl_for_mapping_is_in_level_order() -> None:
    """Referenced tables (level 0) come before the tables that reference them."""
    statements = ddl_for_mapping(demo_mapping())
    assert [s.split("`")[1] for s in statements] == ["plan", "limit"]


# -- against the real server -----------------------------------------------------------------


@pytest.mark.integration
def test_apply_twice_creates_once_and_reports_no_drift(target_url: str) -> None:
    """The second apply changes nothing and finds the tables as mapped."""
    engine = create_target_engine(target_url, pool_size=1)
    first = apply_mapping(engine, demo_mapping())
    second = apply_mapping(engine, demo_mapping())
    engine.dispose()
    assert sorted(first.created) == ["limit", "plan"]
    assert second.created == [] and sorted(second.existing) == ["limit", "plan"]
    assert second.drift == []


@pytest.mark.integration
def test_keys_differing_in_case_or_trailing_space_do_not_collide(target_url: str) -> None:
    """SQLite compares bytes: 'Foo', 'foo', 'a', 'a ' and ' ' are five keys in MySQL too."""
    engine = create_target_engine(target_url, pool_size=1)
    apply_mapping(engine, demo_mapping())
    keys = ["Foo", "foo", "a", "a ", " ", ""]
    with engine.begin() as conn:
        for i, key in enumerate(keys):
            conn.execute(
                sa.text("INSERT INTO `plan` (`id`, `slug`) VALUES (:id, :slug)"),
                {"id": key, "slug": key or f"empty{i}"},
            )
        stored = conn.execute(sa.text("SELECT `id` FROM `plan`")).scalars().all()
    engine.dispose()
    assert sorted(stored) == sorted(keys)


@pytest.mark.integration
def test_converted_row_with_emoji_inserts_without_warnings(target_url: str) -> None:
    """A 4-byte character survives, and strict mode raises no warning for converted values."""
    mapping = demo_mapping()
    table = mapping.table("limit")
    row = {
        "id": "lim_😀",
        "planId": "pln_1",
        "name": "Zoë 🚀 plan",
        "maxSeats": 2**31 - 1,
        "isActive": 1,
        "settings": '{"a": [1, {"b": null}]}',
        "price": "12345678.90",
        "ratio": 0.25,
        "avatar": b"\x00\xff",
        "updatedAt": "2024-02-29 12:00:01",
    }
    converted = convert_row(table, row)
    engine = create_target_engine(target_url, pool_size=1)
    apply_mapping(engine, mapping)
    columns = ", ".join(f"`{c}`" for c in converted)
    params = ", ".join(f":{c}" for c in converted)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO `limit` ({columns}) VALUES ({params})"), converted)
        warnings = conn.exec_driver_sql("SHOW WARNINGS").all()
        back = conn.execute(sa.text("SELECT `id`, `name`, `updatedAt` FROM `limit`")).one()
    engine.dispose()
    assert warnings == []
    assert tuple(back) == ("lim_😀", "Zoë 🚀 plan", datetime(2024, 2, 29, 12, 0, 1))


@pytest.mark.integration
def test_drift_is_reported_and_nothing_is_altered(target_url: str) -> None:
    """A changed type, a dropped column and an extra column are all reported."""
    engine = create_target_engine(target_url, pool_size=1)
    apply_mapping(engine, demo_mapping())
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE `limit` MODIFY `maxSeats` BIGINT NULL")
        conn.exec_driver_sql("ALTER TABLE `limit` DROP COLUMN `ratio`")
        conn.exec_driver_sql("ALTER TABLE `plan` ADD COLUMN `legacy` INT NULL")
    report = apply_mapping(engine, demo_mapping())
    with engine.connect() as conn:
        still_bigint = conn.execute(
            sa.text(
                "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                " AND TABLE_NAME = 'limit' AND COLUMN_NAME = 'maxSeats'"
            )
        ).scalar()
    engine.dispose()
    problems = {(d.table, d.column): d.problem for d in report.drift}
    assert "mapping says int" in problems[("limit", "maxSeats")]
    assert "missing" in problems[("limit", "ratio")]
    assert "extra" in problems[("plan", "legacy")]
    assert still_bigint == "bigint"
