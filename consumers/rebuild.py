"""Rebuild a target by replaying every table topic from the beginning (DESIGN.md, P3).

Steps: create the mapping's tables in the target; note each partition's end offset NOW;
run the ordinary consume loop (the one apply path) with a fresh consumer group, which
starts at the earliest offset; stop it once the group's committed offsets reach the noted
end offsets. Events written after the start are not waited for — a live `consume` worker
takes over from there — so a rebuild finishes even while the application keeps writing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from pydantic import SecretStr

from consumers.loop import ConsumeLoop, LoopOutcome
from worker.config import Settings
from worker.db import create_target_engine, ping
from worker.errors import ServiceError
from worker.kafka import admin_client
from worker.logs import get_logger
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping
from worker.topics import topic_for

Partition = tuple[str, int]
_TIMEOUT_S = 30.0
_log = get_logger("d1cdc.rebuild")


@dataclass(frozen=True)
class RebuildResult:
    group_id: str
    partitions: int
    events: int  # offsets covered, tombstones included
    messages_applied: int
    dead_letters: int
    seconds: float


def offsets(admin: AdminClient, topics: list[str], spec: OffsetSpec) -> dict[Partition, int]:
    """`spec` (earliest/latest) offset of every partition of the existing `topics`."""
    meta = admin.list_topics(timeout=_TIMEOUT_S)
    request = {
        TopicPartition(t, p): spec
        for t in topics
        if t in meta.topics
        for p in meta.topics[t].partitions
    }
    if not request:
        return {}
    result: dict[Partition, int] = {}
    for tp, future in admin.list_offsets(request, request_timeout=_TIMEOUT_S).items():
        result[(tp.topic, tp.partition)] = future.result(timeout=_TIMEOUT_S).offset
    return result


def committed_offsets(
    admin: AdminClient, group: str, parts: list[Partition]
) -> dict[Partition, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in parts])
    future = admin.list_consumer_group_offsets([request], request_timeout=_TIMEOUT_S)[group]
    answer = future.result(timeout=_TIMEOUT_S)
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}


def rebuild(
    settings: Settings,
    mapping: Mapping,
    target_url: str,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
) -> RebuildResult:
    """Replay all table topics into `target_url`; see the module docstring."""
    started = time.monotonic()
    engine = create_target_engine(target_url)
    ping(engine)
    apply_mapping(engine, mapping)
    admin = admin_client(settings.kafka_bootstrap)
    topics = [topic_for(settings.topic_prefix, t) for t in mapping.tables]
    try:
        ends = offsets(admin, topics, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = offsets(admin, topics, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    except KafkaException as exc:
        raise ServiceError(f"Kafka unreachable while reading end offsets: {exc}") from None
    total = sum(ends[p] - starts.get(p, 0) for p in ends)
    group = f"{settings.group_id}-rebuild-{uuid.uuid4().hex[:8]}"
    replay = settings.model_copy(update={"group_id": group, "target_url": SecretStr(target_url)})
    loop = ConsumeLoop(replay, mapping, engine=engine)
    outcome: list[LoopOutcome] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(loop.run())
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="d1cdc-rebuild", daemon=True)
    worker.start()
    pending = [p for p in ends if ends[p] > starts.get(p, 0)]
    deadline = None if timeout_s is None else started + timeout_s
    try:
        while pending and worker.is_alive():
            done_offsets = committed_offsets(admin, group, pending)
            pending = [p for p in pending if done_offsets.get(p, -1) < ends[p]]
            if on_progress is not None:
                behind = sum(
                    ends[p] - max(done_offsets.get(p, -1), starts.get(p, 0)) for p in pending
                )
                on_progress(total - behind, total)
            if not pending:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ServiceError(f"rebuild not caught up within {timeout_s:.0f} s")
            time.sleep(poll_s)  # polling the group's committed offsets
    finally:
        loop.stop()
        worker.join()
        engine.dispose()
    if failure:
        raise failure[0]
    if pending:
        raise ServiceError("the consume loop stopped before the rebuild caught up")
    result = outcome[0] if outcome else LoopOutcome()
    return RebuildResult(
        group, len(ends), total, result.messages, result.dead_letters, time.monotonic() - started
    )
