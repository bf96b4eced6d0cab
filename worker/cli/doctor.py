"""`d1cdc doctor`: one line per check of Kafka, the MySQL target and the source."""

from __future__ import annotations

import sqlite3
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
import typer
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, libversion
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from worker.cli.context import settings_from
from worker.cli.status_report import collect_capture
from worker.config import Settings
from worker.db import target_engine
from worker.errors import ConfigError, ServiceError
from worker.kafka import admin_client, consumer_config, producer_config
from worker.schema.mapping import load_mapping


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def check_kafka(settings: Settings) -> str:
    """Broker answers metadata; a scratch topic can be created, written and read back."""
    admin = admin_client(settings.kafka_bootstrap)
    try:
        meta = admin.list_topics(timeout=10)
    except KafkaException as exc:
        raise ServiceError(f"broker {settings.kafka_bootstrap} unreachable: {exc}") from None
    topic = f"{settings.topic_prefix}._doctor_{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=15
    )
    try:
        producer = Producer(producer_config(settings.kafka_bootstrap))
        producer.produce(topic, key=b"doctor", value=b"ping")
        if producer.flush(15) != 0:
            raise ServiceError(f"could not produce to {topic}")
        consumer = Consumer(
            consumer_config(settings.kafka_bootstrap, f"d1cdc-doctor-{uuid.uuid4().hex[:8]}")
        )
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            msg = consumer.poll(15)
            if msg is None or msg.error() or msg.value() != b"ping":
                raise ServiceError(f"could not read back the message written to {topic}")
        finally:
            consumer.close()
    finally:
        admin.delete_topics([topic])
    elapsed_ms = (time.monotonic() - started) * 1000
    return (
        f"{settings.kafka_bootstrap}: {len(meta.brokers)} broker(s), cluster {meta.cluster_id}, "
        f"topic create/produce/consume {elapsed_ms:.0f} ms (librdkafka {libversion()[0]})"
    )


def check_target(settings: Settings) -> str:
    """Server version, strict sql_mode, UTC time zone and utf8mb4 on our sessions."""
    engine = target_engine(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            version, sql_mode, tz, charset = conn.execute(
                sa.text(
                    "SELECT VERSION(), @@SESSION.sql_mode, @@SESSION.time_zone, "
                    "@@character_set_connection"
                )
            ).one()
            tls = describe_tls(conn.connection.dbapi_connection)
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", exc)
        raise ServiceError(
            f"MySQL target {settings.target_url_redacted()} unreachable: {cause}"
        ) from None
    finally:
        engine.dispose()
    problems = []
    if "STRICT_ALL_TABLES" not in sql_mode and "STRICT_TRANS_TABLES" not in sql_mode:
        problems.append(f"sql_mode is not strict ({sql_mode})")
    if tz not in ("+00:00", "UTC"):
        problems.append(f"time_zone is {tz}, not UTC")
    if charset != "utf8mb4":
        problems.append(f"connection charset is {charset}, not utf8mb4")
    if problems:
        raise ServiceError("MySQL target: " + "; ".join(problems))
    return f"{settings.target_url_redacted()}: {version}, strict sql_mode, UTC, utf8mb4, {tls}"


def describe_tls(dbapi_connection: object) -> str:
    """TLS version, cipher and whether the server was verified, read from the client socket.

    Read on our side, not from the server's `Ssl_cipher` status: what matters is what this
    client checked (PlanetScale's vtgate need not expose session status).
    """
    sock = getattr(dbapi_connection, "_sock", None)
    if not isinstance(sock, ssl.SSLSocket):
        return "TLS off (plaintext)"
    ctx = sock.context
    if ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname:
        verified = "certificate and hostname verified"
    elif ctx.verify_mode == ssl.CERT_REQUIRED:
        verified = "certificate verified, hostname NOT checked"
    else:
        verified = "certificate NOT verified"
    cipher = sock.cipher()
    return f"{sock.version()} {cipher[0] if cipher else '?'}, {verified}"


def check_source(settings: Settings) -> str:
    """The SQLite source opens read-only and has tables."""
    if settings.source != "sqlite":
        return f"source {settings.source}: not checked here (use `d1cdc schema infer`)"
    path = settings.source_path
    if not path.is_file():
        raise ServiceError(f"source file {path} (D1CDC_SOURCE_PATH) does not exist")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (count,) = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ServiceError(f"source file {path} is not a readable SQLite database: {exc}") from None
    return f"{path}: SQLite, {count} table(s)"


def check_capture(settings: Settings) -> str:
    """D1 capture in the source: triggers current, change-log depth, relay lag."""
    if not settings.mapping_path.is_file():
        return f"not checked: no mapping file {settings.mapping_path} (D1CDC_MAPPING_PATH)"
    capture = collect_capture(settings, load_mapping(settings.mapping_path))
    if capture is None:
        return "not installed (no change log in the source): shim and backfill only"
    if capture.error:
        raise ServiceError(f"source unreadable: {capture.error}")
    if capture.problems:
        raise ServiceError(
            f"{len(capture.problems)} drift problem(s), e.g. {capture.problems[0]}: "
            "run `d1cdc capture check`"
        )
    return f"triggers current; change log {capture.depth} entries, relay lag {capture.lag_s:.1f} s"


CHECKS: tuple[tuple[str, Callable[[Settings], str]], ...] = (
    ("kafka", check_kafka),
    ("target", check_target),
    ("source", check_source),
    ("capture", check_capture),
)


def run_checks(settings: Settings, only: set[str] | None = None) -> list[CheckResult]:
    results = []
    for name, check in CHECKS:
        if only is not None and name not in only:
            continue
        try:
            results.append(CheckResult(name, True, check(settings)))
        except (ServiceError, KafkaException) as exc:
            results.append(CheckResult(name, False, str(exc)))
    return results


def doctor(
    ctx: typer.Context,
    only: str | None = typer.Option(
        None, help="Comma-separated subset of checks: kafka, target, source, capture."
    ),
) -> None:
    """Check the Kafka broker, the MySQL target and the source; exit 1 naming the first failure."""
    settings = settings_from(ctx)
    chosen = None if only is None else {c.strip() for c in only.split(",") if c.strip()}
    unknown = (chosen or set()) - {name for name, _ in CHECKS}
    if unknown:
        raise ConfigError(f"doctor --only: unknown check(s) {', '.join(sorted(unknown))}")
    results = run_checks(settings, chosen)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        typer.echo(f"{mark} {result.name:<7} {result.detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        typer.echo(f"d1cdc: doctor: {failed[0].name} check failed", err=True)
        raise typer.Exit(1)
