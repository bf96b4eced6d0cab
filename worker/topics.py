"""Topic management: one compacted topic per table plus the dead-letter topic, idempotently.

Table topics are compacted (`cleanup.policy=compact`) so they always hold the latest event
of every row and a replay from offset 0 rebuilds the target (DESIGN.md, P3). Tombstones are
kept for `delete.retention.ms` before compaction removes them; that is how long a lagging
consumer can still see a delete. The dead-letter topic is never compacted (two dead events
of one key are two problems) and keeps events forever (`retention.ms=-1`): a dead-lettered
event must be looked at, not aged out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from worker.config import Settings
from worker.errors import ServiceError
from worker.kafka import DLQ_MAX_BYTES, MAX_EVENT_BYTES, admin_client
from worker.logs import get_logger

DLQ_SUFFIX = "_dlq"
_TIMEOUT_S = 30.0
_log = get_logger("d1cdc.topics")


def topic_for(prefix: str, table: str) -> str:
    return f"{prefix}.{table}"


def reverse_topic_for(prefix: str, table: str) -> str:
    """The reverse pipeline's topic (MySQL → D1 after cut-over), apart from the forward one
    so a forward consumer can never apply a reverse event back into MySQL."""
    return f"{prefix}.reverse.{table}"


def dlq_topic(prefix: str) -> str:
    return f"{prefix}.{DLQ_SUFFIX}"


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    not_compacted: list[str] = field(default_factory=list)


def table_topic_config(tombstone_retention_hours: float) -> dict[str, str]:
    return {
        "cleanup.policy": "compact",
        "delete.retention.ms": str(int(tombstone_retention_hours * 3_600_000)),
        "max.message.bytes": str(MAX_EVENT_BYTES),
    }


DLQ_CONFIG = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "max.message.bytes": str(DLQ_MAX_BYTES),
}


def ensure_topics(
    admin: AdminClient,
    prefix: str,
    tables: Iterable[str],
    partitions: int,
    replication: int,
    *,
    tombstone_retention_hours: float = 168.0,
    topic_of: Callable[[str, str], str] = topic_for,
) -> TopicReport:
    """Create missing table topics and the DLQ; report (and warn about) the ones that exist."""
    wanted = {topic_of(prefix, t): table_topic_config(tombstone_retention_hours) for t in tables}
    wanted[dlq_topic(prefix)] = DLQ_CONFIG
    try:
        present = set(admin.list_topics(timeout=_TIMEOUT_S).topics)
    except KafkaException as exc:
        raise ServiceError(f"Kafka unreachable while listing topics: {exc}") from None
    report = TopicReport()
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication, config=cfg)
        for name, cfg in wanted.items()
        if name not in present
    ]
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=_TIMEOUT_S).items():
            try:
                future.result(timeout=_TIMEOUT_S)
                report.created.append(name)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator won
                    raise ServiceError(f"could not create topic {name}: {error.str()}") from None
                present.add(name)
    report.existing = sorted(name for name in wanted if name in present)
    table_topics = [n for n in report.existing if n != dlq_topic(prefix)]
    report.not_compacted = _not_compacted(admin, table_topics)
    for name in report.not_compacted:
        _log.warning(
            "existing table topic is not compacted; a replay may miss rows whose events "
            "aged out — set cleanup.policy=compact",
            topic=name,
        )
    report.created.sort()
    return report


def ensure_table_topics(
    settings: Settings,
    tables: Iterable[str],
    *,
    topic_of: Callable[[str, str], str] = topic_for,
) -> TopicReport:
    """`ensure_topics` with the partitions, replication and retention of `settings`
    (`topic_of=reverse_topic_for`: the reverse pipeline's topics)."""
    return ensure_topics(
        admin_client(settings.kafka_bootstrap),
        settings.topic_prefix,
        tables,
        settings.topic_partitions,
        settings.topic_replication,
        tombstone_retention_hours=settings.tombstone_retention_hours,
        topic_of=topic_of,
    )


def _not_compacted(admin: AdminClient, topics: list[str]) -> list[str]:
    if not topics:
        return []
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics]
    result = []
    for resource, future in admin.describe_configs(resources).items():
        try:
            configs = future.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            raise ServiceError(f"could not read the config of {resource.name}: {exc}") from None
        policy = configs["cleanup.policy"].value or ""
        if "compact" not in policy.split(","):
            result.append(resource.name)
    return sorted(result)
