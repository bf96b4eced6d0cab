"""The README's first command, at a small scale: the whole pipeline ends with a clean verify."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from worker.db import create_target_engine

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_and_verifies_clean(
    tmp_path: Path, kafka_bootstrap: str, mysql_server_url: str, unique_name: str
) -> None:
    """`d1cdc demo`: generate, infer, apply, backfill + consume under live writes, verify = 0."""
    env = {
        **os.environ,
        "D1CDC_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "D1CDC_TARGET_URL": mysql_server_url,
        "D1CDC_LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-m", "worker", "demo", "--scale", "0.3", "--seconds", "6"]
    cmd += ["--rate", "30", "--workdir", str(tmp_path), "--database", unique_name]
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert " tables, 0 differences" in result.stderr
        assert (tmp_path / "d1cdc.mapping.toml").is_file()
        engine = create_target_engine(mysql_server_url, pool_size=1)
        with engine.connect() as conn:
            users = conn.execute(sa.text(f"SELECT count(*) FROM `{unique_name}`.`user`")).scalar()
        engine.dispose()
        assert users and users > 0
    finally:
        engine = create_target_engine(mysql_server_url, pool_size=1)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{unique_name}`"))
        engine.dispose()
