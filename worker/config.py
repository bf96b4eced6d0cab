"""Settings: flags > `D1CDC_*` environment variables > an optional TOML file > defaults.

Every setting is documented here (the `description` is what `--help` and the README show).
A wrong value raises `ConfigError` naming the environment variable, so the CLI can exit
non-zero with one line. Secrets (the target URL's password, the D1 API token) are
`SecretStr`: they never appear in `repr`, logs or error messages.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from worker.errors import ConfigError

ENV_PREFIX = "D1CDC_"
LOCAL_TARGET_URL = "mysql+pymysql://d1cdc:d1cdc-local-pw@127.0.0.1:3306/d1cdc"


class Settings(BaseSettings):
    """Everything a d1cdc process can be told. Env var = `D1CDC_` + upper-case field name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=True
    )

    # -- source ------------------------------------------------------------------------
    source: Literal["sqlite", "d1http"] = Field(
        "sqlite", description="Where rows are read from: an SQLite file or the D1 HTTP API."
    )
    source_path: Path = Field(
        Path("demo/d1-demo.sqlite"),
        description="SQLite file of the source (a D1 export or wrangler's local state file).",
    )
    d1_account_id: str = Field("", description="Cloudflare account id (source=d1http).")
    d1_database_id: str = Field("", description="D1 database id (source=d1http).")
    d1_api_token: SecretStr = Field(SecretStr(""), description="Cloudflare API token (secret).")
    d1_api_base: str = Field(
        "https://api.cloudflare.com/client/v4", description="Base URL of the Cloudflare API."
    )

    d1_requests_per_5min: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description=(
            "D1 API requests this process may send per 5 minutes (Cloudflare allows 1,200 per "
            "account: split it between relay and backfill; more only for a local D1 API)."
        ),
    )

    shutdown_deadline_s: float = Field(
        25.0,
        gt=0,
        le=3600,
        description="After SIGTERM, a worker that has not stopped in this time exits (status "
        "3); keep it below the container's grace period (Kubernetes: 30 s).",
    )

    # -- backfill ------------------------------------------------------------------------
    backfill_interval_s: float = Field(
        10.0, gt=0, le=86_400, description="backfill --follow: seconds between polls."
    )
    backfill_chunk: int = Field(5000, ge=1, le=100_000, description="Backfill: rows per page.")
    backfill_lookback_s: float = Field(
        300.0, ge=0, description="Backfill: seconds re-read behind each watermark (late commits)."
    )
    backfill_detect_deletes: bool = Field(
        True,
        description="Backfill: find hard deletes by a key-set diff each pass "
        "(with D1 capture on, deletes are captured: false is enough).",
    )
    backfill_deletes_every_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        description="Backfill --follow: at most one delete diff per table this often; 0 = every "
        "pass. The diff reads every key of both sides: over D1's API (the reverse poller reads "
        "D1's keys) each pass costs requests, so 60 or more suits `backfill --reverse`.",
    )
    backfill_settle_timeout_s: float = Field(
        120.0,
        ge=0,
        description="Backfill: how long a one-shot pass waits for consumers before a delete diff.",
    )
    consumer_group_protocol: Literal["classic", "consumer"] = Field(
        "consumer",
        description="Kafka group protocol of the consumers: consumer (KIP-848, Kafka >= 4.0: "
        "the broker assigns; back within ~1 s of a broker outage) or classic (older brokers; "
        "recovery waits out the session timeout). See ops/bench/bench_broker_outage.py.",
    )
    consumer_session_timeout_ms: int = Field(
        45_000,
        ge=6_000,
        le=3_600_000,
        description="Kafka session timeout: how soon a crashed worker's partitions move.",
    )
    consumer_unique_retry_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How long an upsert whose UNIQUE value still belongs to another key is "
        "retried (the write freeing it may be on another partition) before it is dead-lettered.",
    )

    # -- capture relay -------------------------------------------------------------------
    relay_batch_size: int = Field(
        500, ge=1, le=10_000, description="Change-log entries the relay ships per cycle."
    )
    relay_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Relay: seconds between polls of an empty change log."
    )
    relay_lease_s: float = Field(
        30.0,
        ge=5,
        le=3600,
        description="Relay lease: how long a stopped relay blocks a new one (renewed each cycle).",
    )

    # -- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    topic_prefix: str = Field(
        "d1cdc", pattern=r"^[A-Za-z0-9_\-]+$", description="Topics are {prefix}.{table}."
    )
    topic_partitions: int = Field(3, ge=1, le=1000, description="Partitions per new topic.")
    topic_replication: int = Field(1, ge=1, le=10, description="Replication factor.")
    group_id: str = Field("d1cdc-apply", min_length=1, description="Consumer group id.")
    reverse_group_id: str = Field(
        "d1cdc-reverse",
        min_length=1,
        description="Consumer group of the D1 sink (`consume --into d1`, after cut-over).",
    )
    reverse_binlog_server_id: int = Field(
        16_016,
        ge=1,
        le=4_294_967_295,
        description="`backfill --reverse --binlog`: the replica server_id it reads the binlog "
        "as; unique among the server's replicas and different from the server's own.",
    )

    # -- target ------------------------------------------------------------------------
    target_url: SecretStr = Field(
        SecretStr(LOCAL_TARGET_URL),
        description="SQLAlchemy URL of the MySQL/PlanetScale target (mysql+pymysql://…).",
    )
    target_allow_plaintext: bool = Field(
        False,
        description="Allow unencrypted MySQL to a non-loopback host (ssl_mode=disabled).",
    )
    mapping_path: Path = Field(
        Path("d1cdc.mapping.toml"), description="Mapping file written by `schema infer`."
    )

    # -- apply -------------------------------------------------------------------------
    consume_into: Literal["mysql", "d1"] = Field(
        "mysql",
        description="What `consume` applies: mysql = the table topics into the MySQL target; "
        "d1 = the reverse topics ({prefix}.reverse.{table}, after cut-over) into the source "
        "(the SQLite file or D1's API), in the group D1CDC_REVERSE_GROUP_ID.",
    )
    batch_size: int = Field(
        2000,
        ge=1,
        le=100_000,
        description="Most events per consume batch (a batch is what arrived while the last "
        "one was applied, up to this).",
    )
    rows_per_statement: int = Field(
        500, ge=1, le=100_000, description="Rows per multi-row upsert (PlanetScale: ≤100k)."
    )
    rows_per_transaction: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Rows per MySQL transaction (≤100k: PlanetScale ends a transaction at 20 s).",
    )
    apply_connections: int = Field(
        2,
        ge=1,
        le=16,
        description="MySQL connections one consume process applies a batch over at once "
        "(its keys shared among them; 1 when the target has FOREIGN KEY constraints).",
    )
    tombstone_retention_hours: float = Field(
        168.0, gt=0, description="How long delete tombstones guard against resurrection."
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="HTTP /metrics port; 0 = off.")

    # -- logging -----------------------------------------------------------------------
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto = console on a terminal, JSON lines otherwise."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged."
    )

    @field_validator("target_url")
    @classmethod
    def _target_is_mysql(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if not scheme.startswith("mysql"):
            raise ValueError(f"must be a mysql URL such as mysql+pymysql://…, not {scheme!r}")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE.get("path"))
        return (init_settings, env_settings, toml)

    def target_url_redacted(self) -> str:
        return redact_url(self.target_url.get_secret_value())


# The TOML file is chosen at load time; pydantic-settings reads it from a class-level hook.
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def redact_url(url: str) -> str:
    """`mysql://user:secret@host/db` → `mysql://user:***@host/db`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build `Settings`, turning any validation failure into a one-line `ConfigError`."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} (D1CDC_CONFIG) does not exist")
        try:
            tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    _CONFIG_FILE["path"] = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _CONFIG_FILE["path"] = None


def _describe(exc: ValidationError) -> str:
    """First problem only, as `D1CDC_SETTING: what is wrong` — never the value itself."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "?"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting {ENV_PREFIX}{field.upper()}: {msg}{more}"
