"""Service fixtures shared by every integration test.

Where the services come from, in order:
1. `D1CDC_KAFKA_BOOTSTRAP` / `D1CDC_TARGET_URL` when set (what `.ci/run` does after
   `ops/services.sh up`: a real Kafka from Maven Central jars and a real MariaDB);
2. testcontainers, when a Docker engine answers (apache/kafka and mysql:8.0 images);
3. otherwise the test is skipped locally — and FAILS when `CI` is set, so a CI run
   without services can never look green (dramatiq's conftest does the same).

Every test gets its own topic prefix, consumer group and database, so tests cannot leak
into each other and can run in any order.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

from worker.config import Settings, load_settings
from worker.db import create_database, create_target_engine

# Property tests check results, not speed (performance lives in ops/bench/): Hypothesis's
# 200 ms per-example deadline failed a correct test on a loaded two-core machine.
hypothesis_settings.register_profile("d1cdc", deadline=None)
hypothesis_settings.load_profile("d1cdc")

KAFKA_IMAGE = "apache/kafka:4.1.1"
MYSQL_IMAGE = "mysql:8.0"


def _missing(what: str) -> None:
    message = f"{what} is not available: set it, start ops/services.sh, or run a Docker engine"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker."""
    if bootstrap := os.environ.get("D1CDC_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    if not _docker_available():
        _missing("Kafka (D1CDC_KAFKA_BOOTSTRAP)")
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """SQLAlchemy URL of a real MySQL-compatible server (its default database)."""
    if url := os.environ.get("D1CDC_TARGET_URL"):
        yield url
        return
    if not _docker_available():
        _missing("MySQL (D1CDC_TARGET_URL)")
    from testcontainers.mysql import MySqlContainer

    with MySqlContainer(MYSQL_IMAGE, username="d1cdc", password="d1cdc-test-pw") as mysql:
        yield mysql.get_connection_url().replace("mysql://", "mysql+pymysql://", 1)


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def target_url(mysql_server_url: str, unique_name: str) -> Iterator[str]:
    """URL of a fresh, empty database of this test's own; dropped afterwards."""
    create_database(mysql_server_url, unique_name)
    url = sa.engine.make_url(mysql_server_url).set(database=unique_name)
    yield url.render_as_string(hide_password=False)
    engine = create_target_engine(mysql_server_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{unique_name}`"))
    engine.dispose()


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, target_url: str, unique_name: str, tmp_path: Any
) -> Callable[..., Settings]:
    """Settings for this test's own topics, group and database; keyword overrides win."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "target_url": target_url,
            "topic_prefix": unique_name,
            "group_id": f"{unique_name}-apply",
            "mapping_path": tmp_path / "mapping.toml",
            "metrics_port": 0,
            "log_format": "json",
        }
        values.update(overrides)
        return load_settings(None, **values)

    return build
