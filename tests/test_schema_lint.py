"""`d1cdc schema lint`: PlanetScale's schema rules, checked before `schema apply` touches anything.

The byte counts are not taken on trust: the row-size and key-size tests create tables at
the limit and one byte past it on the real MariaDB, and the server must agree with the lint.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import tomlkit
from typer.testing import CliRunner

from tests.edge_mapping import EDGE_DICT, edge_mapping
from worker.cli.main import app
from worker.db import create_target_engine
from worker.schema import ddl
from worker.schema.ddl import apply_mapping, create_table_sql
from worker.schema.lint import MAX_ROW_BYTES, lint_mapping, table_row_bytes
from worker.schema.mapping import Mapping, TableMapping, mapping_from_dict

runner = CliRunner()
LONG_NAME = "user_profile_settings_with_a_name_far_too_long_for_mysql_identifiers"

BAD_DICT: dict[str, Any] = {
    "tables": {
        LONG_NAME: {
            "primary_key": ["id"],
            "columns": {"id": {"type": "string(32)", "nullable": False}},
        },
        "post": {
            "primary_key": ["body"],
            "columns": {
                "body": {"type": "text", "nullable": False},
                "slug": {"type": "string(800)", "nullable": False},
                "authorId": {"type": "string(32)"},
            },
            "indexes": [
                {"name": "post_slug_unique", "columns": ["slug"], "unique": True},
                {"name": "post_ghost_idx", "columns": ["ghost"]},
            ],
            "foreign_keys": [
                {"columns": ["authorId"], "ref_table": "nowhere", "ref_columns": ["id"]}
            ],
        },
        "wide": {
            "primary_key": ["id"],
            "columns": {
                "id": {"type": "string(32)", "nullable": False},
                **{f"label{i}": {"type": "string(1000)"} for i in range(20)},
            },
        },
        "many": {
            "primary_key": ["id"],
            "columns": {
                "id": {"type": "integer", "nullable": False},
                **{f"c{i}": {"type": "integer"} for i in range(1017)},
            },
        },
    }
}


def write_mapping(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomlkit.dumps(data))
    return path


def one_table(columns: dict[str, Any], primary_key: list[str]) -> TableMapping:
    data = {"tables": {"probe": {"primary_key": primary_key, "columns": columns}}}
    return mapping_from_dict(data).tables["probe"]


def only(table: TableMapping) -> Mapping:
    return Mapping({table.name: table})


def test_demo_and_edge_mappings_pass(tmp_path: Path) -> None:
    source, mapping = tmp_path / "demo.sqlite", tmp_path / "mapping.toml"
    assert (
        runner.invoke(app, ["schema", "demo", "--out", str(source), "--scale", "0.1"]).exit_code
        == 0
    )
    infer = ["schema", "infer", "--source", str(source), "--out", str(mapping)]
    assert runner.invoke(app, infer).exit_code == 0
    result = runner.invoke(app, ["schema", "lint", "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 59 tables, 498 columns; widest row "), result.output
    assert lint_mapping(edge_mapping(), foreign_keys=True) == []


def test_bad_mapping_gets_one_line_per_violation_naming_table_and_column(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path / "bad.toml", BAD_DICT)
    result = runner.invoke(app, ["schema", "lint", "--mapping", str(mapping), "--foreign-keys"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    problems = [line for line in lines if line.startswith("lint: ")]
    expected_starts = [
        f"lint: {LONG_NAME}: table name is 68 characters, over MySQL's 64",
        "lint: many: 1018 columns, over InnoDB's 1017",
        "lint: post.body: in the primary key but mapped as text; map it as string(n)",
        "lint: post.slug: unique key post_slug_unique is 3200 bytes in utf8mb4, over InnoDB's 3072",
        "lint: post.ghost: index post_ghost_idx names a column that is not mapped",
        "lint: post: foreign key (authorId) → nowhere: nowhere is not in the mapping",
        "lint: wide: row is up to 80172 bytes, over MySQL's 65535 (error 1118)",
    ]
    assert len(problems) == len(expected_starts), result.output
    for start in expected_starts:
        assert any(p.startswith(start) for p in problems), (start, result.output)
    assert lines[-1] == f"{len(problems)} problem(s): change the mapping, then run this again"
    # Without --foreign-keys the FK is not emitted, so it is not a problem.
    plain = runner.invoke(app, ["schema", "lint", "--mapping", str(mapping)])
    assert "foreign key" not in plain.output and plain.exit_code == 1


def test_foreign_key_must_reference_a_key(tmp_path: Path) -> None:
    data = tomlkit.parse(tomlkit.dumps(EDGE_DICT)).unwrap()
    data["tables"]["limit"]["foreign_keys"][0]["ref_columns"] = ["select", "key"]
    problems = lint_mapping(mapping_from_dict(data), foreign_keys=True)
    assert [str(p) for p in problems] == [
        "limit: foreign key (orderKey, orderSelect) → order: (select, key) is not a key of "
        "order; MySQL needs an index on the referenced columns"
    ]


def test_missing_primary_key_is_one_line_naming_the_table(tmp_path: Path) -> None:
    data = {"tables": {"audit": {"primary_key": [], "columns": {"at": {"type": "integer"}}}}}
    mapping = write_mapping(tmp_path / "m.toml", data)
    result = subprocess.run(
        [sys.executable, "-m", "worker", "schema", "lint", "--mapping", str(mapping)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "table 'audit' has no primary key in the mapping (PlanetScale requires one)" in line


def test_ddl_charset_other_than_utf8mb4_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DDL check reads what `create_table_sql` generates, so a regression there shows."""
    monkeypatch.setattr(ddl, "TABLE_OPTIONS", "ENGINE=InnoDB DEFAULT CHARSET=latin1")
    problems = [str(p) for p in lint_mapping(edge_mapping())]
    assert "order: mysql DDL uses charset latin1" in problems


@pytest.mark.integration
def test_row_size_count_agrees_with_the_server_at_the_limit(target_url: str) -> None:
    """65,535 bytes by the lint's count is created; 65,536 is refused with 1118, and linted."""
    base = {"id": {"type": "string(64)", "nullable": False}}  # 258 bytes
    base |= {f"c{i}": {"type": "string(5000)", "nullable": False} for i in range(3)}  # 60,006
    base["last"] = {"type": "string(1317)", "nullable": False}  # 5,270: 65,534 so far
    at_limit = one_table(base | {"flag": {"type": "boolean", "nullable": False}}, ["id"])
    over = one_table(base | {"flag": {"type": "boolean"}, "flag2": {"type": "boolean"}}, ["id"])
    assert table_row_bytes(at_limit) == MAX_ROW_BYTES
    assert table_row_bytes(over) == MAX_ROW_BYTES + 2  # two 1-byte columns + a NULL-bit byte
    assert lint_mapping(only(at_limit)) == []
    assert "error 1118" in str(lint_mapping(only(over))[0])
    engine = create_target_engine(target_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(create_table_sql(at_limit, dialect="mariadb"))
            conn.exec_driver_sql("DROP TABLE `probe`")
            with pytest.raises(sa.exc.OperationalError, match=r"\(1118"):
                conn.exec_driver_sql(create_table_sql(over, dialect="mariadb"))
    finally:
        engine.dispose()


@pytest.mark.integration
def test_key_size_count_agrees_with_the_server_at_the_limit(target_url: str) -> None:
    """A string(768) key is 3,072 bytes and is created; string(769) is refused with 1071."""
    fits = one_table({"id": {"type": "string(768)", "nullable": False}}, ["id"])
    too_long = one_table({"id": {"type": "string(769)", "nullable": False}}, ["id"])
    assert lint_mapping(only(fits)) == []
    assert "error 1071" in str(lint_mapping(only(too_long))[0])
    engine = create_target_engine(target_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(create_table_sql(fits, dialect="mariadb"))
            conn.exec_driver_sql("DROP TABLE `probe`")
            with pytest.raises(sa.exc.OperationalError, match=r"\(1071"):
                conn.exec_driver_sql(create_table_sql(too_long, dialect="mariadb"))
    finally:
        engine.dispose()


@pytest.mark.integration
def test_apply_lints_first_and_touches_nothing(tmp_path: Path, target_url: str) -> None:
    """Unlinted, apply creates the good table and then fails on the wide one (halfway);
    `schema apply` lints first, so the target stays empty."""
    good = {"primary_key": ["id"], "columns": {"id": {"type": "string(32)", "nullable": False}}}
    data = {"tables": {"good": good, "wide": BAD_DICT["tables"]["wide"] | {"level": 1}}}
    mapping = write_mapping(tmp_path / "m.toml", data)
    env = {"D1CDC_TARGET_URL": target_url}
    result = runner.invoke(app, ["schema", "apply", "--mapping", str(mapping)], env=env)
    assert result.exit_code == 1
    assert "lint: wide: row is up to 80172 bytes" in result.output
    assert result.output.rstrip().endswith("schema apply: nothing was changed in the target")
    engine = create_target_engine(target_url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TABLES").all() == []
        with pytest.raises(sa.exc.OperationalError, match=r"\(1118"):
            apply_mapping(engine, mapping_from_dict(data))
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TABLES").scalars().all() == ["good"]
    finally:
        engine.dispose()
