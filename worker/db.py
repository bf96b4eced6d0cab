"""The MySQL target connection: one place that creates engines.

Every connection runs in strict SQL mode and UTC, with utf8mb4, so a value that does not
fit is an error rather than a silent truncation, and DATETIME values mean UTC.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from worker.config import redact_url
from worker.errors import ServiceError

STRICT_SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ZERO_DATE,NO_ZERO_IN_DATE"
)


def create_target_engine(url: str, *, pool_size: int = 5, database: str | None = None) -> Engine:
    """An engine for `url` (optionally another database on the same server)."""
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    connect_args: dict[str, Any] = {
        "charset": "utf8mb4",
        "init_command": f"SET SESSION sql_mode='{STRICT_SQL_MODE}', time_zone='+00:00'",
        "connect_timeout": 10,
    }
    if parsed.host not in (None, "127.0.0.1", "localhost", "::1") and "ssl" not in parsed.query:
        # PlanetScale requires TLS; PyMySQL enables it when given any ssl dict.
        connect_args["ssl"] = {"check_hostname": True}
    return sa.create_engine(
        parsed,
        connect_args=connect_args,
        pool_size=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def ping(engine: Engine) -> None:
    """Raise `ServiceError` (without the password) when the target cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        target = redact_url(engine.url.render_as_string(hide_password=False))
        raise ServiceError(f"MySQL target {target} unreachable: {_root_cause(exc)}") from None


def _root_cause(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


def create_database(url: str, name: str) -> None:
    """CREATE DATABASE IF NOT EXISTS `name` on the server of `url` (tests, rebuild)."""
    engine = create_target_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
    finally:
        engine.dispose()
