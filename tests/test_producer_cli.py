"""The producer commands' user-facing contract: help, one-line errors, topics create."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from backfill_fixtures import write_mapping

from worker.config import Settings

D1CDC = str(Path(sys.executable).parent / "d1cdc")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [D1CDC, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "D1CDC_LOG_FORMAT": "json", **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("command", [["backfill"], ["rebuild"], ["topics", "create"]])
def test_every_producer_command_has_help(command: list[str]) -> None:
    """`--help` exits 0 and describes the command."""
    result = _run(*command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_backfill_of_an_unknown_table_is_a_one_line_error(tmp_path: Path) -> None:
    """A typo in --tables names the table in one line, without a traceback."""
    mapping = write_mapping(tmp_path / "mapping.toml")
    result = _run("backfill", "--tables", "membr", "--mapping", str(mapping))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "d1cdc: error: table 'membr' is not in the mapping"
    ]


def test_backfill_of_a_missing_source_file_names_the_setting(tmp_path: Path) -> None:
    """A wrong source path is reported with the setting to fix, not a stack trace."""
    mapping = write_mapping(tmp_path / "mapping.toml")
    result = _run(
        "backfill", "--mapping", str(mapping), "--source-path", str(tmp_path / "nope.sqlite"),
        env={"D1CDC_KAFKA_BOOTSTRAP": os.environ.get("D1CDC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")},
    )  # fmt: skip
    assert result.returncode != 0
    assert "D1CDC_SOURCE_PATH" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.integration
def test_topics_create_then_again_reports_existing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """`topics create` creates each table topic and the DLQ once; a rerun only lists them."""
    settings = make_settings()
    mapping = write_mapping(tmp_path / "mapping.toml")
    env = {"D1CDC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "D1CDC_TOPIC_PREFIX": settings.topic_prefix}  # fmt: skip
    first = _run("topics", "create", "--mapping", str(mapping), "--partitions", "1", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 4  # team, member, limit + the DLQ
    again = _run("topics", "create", "--mapping", str(mapping), env=env)
    assert again.returncode == 0 and "created" not in again.stdout
    assert again.stdout.count("exists") == 4
