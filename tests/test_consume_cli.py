"""`d1cdc consume` and `d1cdc dlq` at the command line: user mistakes are one line, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.consume_helpers import MAPPING_TOML, create_topics, produce, user_event
from worker.config import Settings

D1CDC = [sys.executable, "-c", "from worker.cli.main import run; run()"]


def _run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*D1CDC, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def test_unknown_table_filter_is_a_one_line_error(tmp_path: Path) -> None:
    """--tables naming a table the mapping lacks fails before connecting, in one line."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(MAPPING_TOML, encoding="utf-8")
    result = _run("consume", "--tables", "user,nope", env={"D1CDC_MAPPING_PATH": str(mapping)})
    assert result.returncode == 2
    assert result.stderr.strip() == "d1cdc: error: table 'nope' is not in the mapping"


def test_missing_mapping_file_is_a_one_line_error(tmp_path: Path) -> None:
    """No mapping file: say which file and how to create it."""
    result = _run("consume", env={"D1CDC_MAPPING_PATH": str(tmp_path / "none.toml")})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "schema infer" in result.stderr


@pytest.mark.integration
def test_missing_target_tables_stop_the_worker_with_a_hint_and_no_password(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Target schema not applied: exit non-zero, one line naming `schema apply`, no secret."""
    settings = make_settings()
    (tmp_path / "mapping.toml").write_text(MAPPING_TOML, encoding="utf-8")
    create_topics(kafka_bootstrap, settings.topic_prefix, ["user"])
    produce(kafka_bootstrap, settings.topic_prefix, [user_event("u1", 1)])
    env = {
        "D1CDC_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_TOPIC_PREFIX": settings.topic_prefix,
        "D1CDC_GROUP_ID": settings.group_id,
        "D1CDC_MAPPING_PATH": str(tmp_path / "mapping.toml"),
        "D1CDC_LOG_LEVEL": "error",
    }
    result = _run("consume", "--until-caught-up", "--timeout", "60", env=env, timeout=90)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("d1cdc: error: target schema does not match the mapping")
    assert "schema apply" in last
    password = settings.target_url.get_secret_value().split(":")[2].split("@")[0]
    assert password not in result.stderr
