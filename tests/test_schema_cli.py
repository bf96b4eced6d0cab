"""`d1cdc schema …` end to end: demo → infer → ddl / order / apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from worker.cli.main import app
from worker.db import create_target_engine
from worker.demo import APPENDIX_LEVELS

runner = CliRunner()


@pytest.fixture
def demo_and_mapping(tmp_path: Path) -> tuple[Path, Path]:
    source, mapping = tmp_path / "demo.sqlite", tmp_path / "mapping.toml"
    result = runner.invoke(app, ["schema", "demo", "--out", str(source), "--scale", "0.1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["schema", "infer", "--source", str(source), "--out", str(mapping)])
    assert result.exit_code == 0, result.output
    return source, mapping


def test_infer_writes_a_mapping_and_reports_what_needs_review(
    demo_and_mapping: tuple[Path, Path],
) -> None:
    """The summary counts tables and REVIEW columns; the file names every table."""
    source, mapping = demo_and_mapping
    text = mapping.read_text(encoding="utf-8")
    assert "[tables.score_audit_log]" in text and "[tables.limit]" in text
    assert "d1_migrations" not in text and "_cf_KV" not in text
    again = runner.invoke(app, ["schema", "infer", "--source", str(source), "--out", str(mapping)])
    assert again.exit_code != 0  # refuses to overwrite a reviewed mapping


def test_order_prints_the_appendix_levels(demo_and_mapping: tuple[Path, Path]) -> None:
    """`schema order` on the demo prints §10's seven levels and the self-reference note."""
    source, _ = demo_and_mapping
    result = runner.invoke(app, ["schema", "order", "--source", str(source)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Level")]
    expected = [f"Level {i}: {', '.join(sorted(lv))}" for i, lv in enumerate(APPENDIX_LEVELS)]
    assert lines == expected
    assert "note: team: self-reference ignored" in result.output


def test_ddl_prints_quoted_statements_for_every_table(demo_and_mapping: tuple[Path, Path]) -> None:
    """One CREATE TABLE per table, reserved names quoted, MariaDB collation on request."""
    _, mapping = demo_and_mapping
    result = runner.invoke(app, ["schema", "ddl", "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    assert result.output.count("CREATE TABLE IF NOT EXISTS") == 59
    assert "CREATE TABLE IF NOT EXISTS `limit`" in result.output
    maria = runner.invoke(app, ["schema", "ddl", "--mapping", str(mapping), "--dialect", "mariadb"])
    assert "utf8mb4_nopad_bin" in maria.output


def test_user_mistake_is_one_line_on_stderr(tmp_path: Path) -> None:
    """A missing mapping file is a one-line error naming it, exit code 2, no traceback."""
    missing = tmp_path / "nope.toml"
    result = subprocess.run(
        [sys.executable, "-m", "worker", "schema", "ddl", "--mapping", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.integration
def test_apply_is_idempotent_and_exits_1_on_drift(
    demo_and_mapping: tuple[Path, Path], target_url: str
) -> None:
    """First apply creates, second finds no drift, after an ALTER it reports drift and exits 1;
    the password never appears in the output."""
    _, mapping = demo_and_mapping
    env = {"D1CDC_TARGET_URL": target_url}
    args = ["schema", "apply", "--mapping", str(mapping)]
    first = runner.invoke(app, args, env=env)
    second = runner.invoke(app, args, env=env)
    engine = create_target_engine(target_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE `plan` DROP COLUMN `isPublic`"))
    engine.dispose()
    drifted = runner.invoke(app, args, env=env)
    password = sa.engine.make_url(target_url).password or "no-password"
    assert first.exit_code == 0 and "created 59 tables" in first.output
    assert second.exit_code == 0 and "59 already existed" in second.output
    assert drifted.exit_code == 1
    assert "drift: plan.isPublic: missing in the target" in drifted.output
    assert password not in first.output + second.output + drifted.output
