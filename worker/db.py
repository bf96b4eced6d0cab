"""The MySQL target connection: one place that creates engines.

Every connection runs in strict SQL mode and UTC, with utf8mb4, so a value that does not
fit is an error rather than a silent truncation, and DATETIME values mean UTC.

TLS: a non-loopback target is reached over TLS that verifies the server's certificate
chain *and* its hostname, against the system CA bundle or the CA file named by the URL's
`ssl_ca=` (PlanetScale's documented URL form). We build the `ssl.SSLContext` ourselves:
PyMySQL, given an ssl dict without a CA, sets `verify_mode = CERT_NONE` and turns
hostname checking off (`pymysql/connections.py`, `_create_ssl_ctx`), which encrypts but
authenticates nobody. Plaintext to a non-loopback host is refused unless
`D1CDC_TARGET_ALLOW_PLAINTEXT` is set.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from worker.config import Settings, redact_url
from worker.errors import ConfigError, ServiceError

STRICT_SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ZERO_DATE,NO_ZERO_IN_DATE"
)
LOOPBACK_HOSTS = frozenset({None, "127.0.0.1", "localhost", "::1"})
ALLOW_PLAINTEXT_ENV = "D1CDC_TARGET_ALLOW_PLAINTEXT"
# URL query keys that say how to do TLS; all are consumed here, none reach the driver.
_SSL_KEYS = ("ssl", "ssl_ca", "sslca", "ssl_mode", "sslmode", "sslrootcert")
_MODES = {
    "disable": "disabled",
    "disabled": "disabled",
    "verify_ca": "verify_ca",
    "verify_identity": "verify_identity",
    "verify-full": "verify_identity",
    "verify_full": "verify_identity",
    "require": "required",
    "required": "required",
    "prefer": "required",
    "preferred": "required",
}


def create_target_engine(
    url: str,
    *,
    pool_size: int = 5,
    database: str | None = None,
    allow_plaintext: bool | None = None,
) -> Engine:
    """An engine for `url` (optionally another database on the same server)."""
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    if allow_plaintext is None:
        allow_plaintext = _env_flag(ALLOW_PLAINTEXT_ENV)
    tls = tls_context(parsed, allow_plaintext=allow_plaintext)
    parsed = parsed.difference_update_query(_SSL_KEYS)
    connect_args: dict[str, Any] = {
        "charset": "utf8mb4",
        "init_command": f"SET SESSION sql_mode='{STRICT_SQL_MODE}', time_zone='+00:00'",
        "connect_timeout": 10,
    }
    if tls is not None:
        connect_args["ssl"] = tls
    else:
        # PyMySQL ≥ 1.1 otherwise "prefers" TLS with an unverified context: plaintext
        # must mean plaintext, so that `doctor` and ssl_mode=disabled tell the truth.
        connect_args["ssl_disabled"] = True
    return sa.create_engine(
        parsed,
        connect_args=connect_args,
        pool_size=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def target_engine(settings: Settings, *, pool_size: int = 5) -> Engine:
    """The engine for the configured target, honouring `target_allow_plaintext`."""
    return create_target_engine(
        settings.target_url.get_secret_value(),
        pool_size=pool_size,
        allow_plaintext=settings.target_allow_plaintext,
    )


def tls_context(url: URL, *, allow_plaintext: bool) -> ssl.SSLContext | None:
    """The TLS context for `url`, or None for plaintext (loopback, or explicitly allowed).

    `ssl_mode=` / `sslmode=` take MySQL's and libpq's spellings; a CA named by `ssl_ca=`
    implies verification. A non-loopback host defaults to `verify_identity`.
    """
    query = {k: _last(v) for k, v in url.query.items()}
    ca = query.get("ssl_ca") or query.get("sslca") or query.get("sslrootcert")
    raw_mode = (query.get("ssl_mode") or query.get("sslmode") or "").lower()
    if raw_mode and raw_mode not in _MODES:
        raise ConfigError(
            f"target URL: ssl_mode={raw_mode!r} is not one of disabled, verify_ca, verify_identity"
        )
    remote = url.host not in LOOPBACK_HOSTS
    mode = _MODES.get(raw_mode) or ("verify_identity" if remote or ca else "disabled")
    if "ssl" in query and not ca and not raw_mode:
        mode = "verify_identity"
    if mode == "required":
        raise ConfigError(
            f"target URL: ssl_mode={raw_mode} encrypts without checking who answers; "
            "use ssl_mode=verify_identity (optionally with ssl_ca=/path/to/ca.pem)"
        )
    if mode == "disabled":
        if remote and not allow_plaintext:
            raise ConfigError(
                f"target {url.host} is not loopback: plaintext MySQL refused "
                f"(set {ALLOW_PLAINTEXT_ENV}=true to allow it, or drop ssl_mode=disabled)"
            )
        return None
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"target URL: ssl_ca={ca} cannot be loaded: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = mode == "verify_identity"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _last(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def ping(engine: Engine) -> None:
    """Raise `ServiceError` (without the password) when the target cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        target = redact_url(engine.url.render_as_string(hide_password=False))
        raise ServiceError(f"MySQL target {target} unreachable: {root_cause(exc)}") from None


def root_cause(exc: BaseException) -> str:
    """The first line of the driver's error, without SQLAlchemy's SQL and parameter dump."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).splitlines()
    return lines[0] if lines else type(orig if orig is not None else exc).__name__


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
