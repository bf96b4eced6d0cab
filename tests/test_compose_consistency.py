"""docker-compose.yml (for Docker users) and ops/services.sh (what CI runs) stay in step."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import KAFKA_IMAGE
from worker.config import ENV_PREFIX, Settings
from worker.db import STRICT_SQL_MODE

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES_SH = (ROOT / "ops" / "services.sh").read_text()


def test_kafka_version_is_the_same_everywhere() -> None:
    """The compose image, the testcontainers image and the Maven jars are one Kafka release."""
    local = re.search(r"^KAFKA_VERSION=(\S+)", SERVICES_SH, re.M)
    assert local is not None
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{local.group(1)}"
    assert f"apache/kafka:{local.group(1)}" == KAFKA_IMAGE


def test_worker_services_only_use_real_settings() -> None:
    """Every D1CDC_* variable the compose file sets is a setting d1cdc reads."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for name, service in COMPOSE["services"].items():
        variables = (
            set(service.get("environment") or {}) if name not in ("kafka", "mysql") else set()
        )
        assert variables - known == set(), name


def test_mysql_runs_with_the_sessions_strict_mode_utc_and_utf8mb4() -> None:
    """Both servers start in the strict SQL mode d1cdc's sessions use, UTC, utf8mb4."""
    command = " ".join(COMPOSE["services"]["mysql"]["command"])
    assert f"--sql-mode={STRICT_SQL_MODE}" in command
    assert "--default-time-zone=+00:00" in command
    assert "--character-set-server=utf8mb4" in command
    assert STRICT_SQL_MODE in SERVICES_SH
    assert "utf8mb4" in SERVICES_SH
