"""Rebuild a target by replaying every table topic from the beginning (DESIGN.md, P3).

Steps: create the mapping's tables in the target; note each partition's end offset NOW;
run the ordinary consume loop (the one apply path) with a fresh consumer group, which
starts at the earliest offset, until the group is caught up through the noted end offsets
(`GroupProgress.caught_up(until=…)`, the loop's own definition of caught up). Events
written after the start are not waited for — a live `consume` worker takes over from
there — so a rebuild finishes even while the application keeps writing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]
from pydantic import SecretStr

from consumers.loop import ConsumeLoop, LoopOutcome
from consumers.offsets import GroupProgress, topic_offsets
from worker.config import Settings
from worker.db import create_target_engine, ping
from worker.errors import ServiceError
from worker.kafka import admin_client
from worker.logs import get_logger
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping
from worker.topics import topic_for

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


def rebuild(
    settings: Settings,
    mapping: Mapping,
    target_url: str,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    timeout_s: float | None = None,
) -> RebuildResult:
    """Replay all table topics into `target_url`; see the module docstring."""
    started = time.monotonic()
    engine = create_target_engine(target_url)
    ping(engine)
    apply_mapping(engine, mapping)
    admin = admin_client(settings.kafka_bootstrap)
    topics = [topic_for(settings.topic_prefix, t) for t in mapping.tables]
    try:
        ends = topic_offsets(admin, topics, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = topic_offsets(admin, topics, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    except KafkaException as exc:
        raise ServiceError(f"Kafka unreachable while reading end offsets: {exc}") from None
    total = sum(ends[p] - starts.get(p, 0) for p in ends)
    group = f"{settings.group_id}-rebuild-{uuid.uuid4().hex[:8]}"
    replay = settings.model_copy(update={"group_id": group, "target_url": SecretStr(target_url)})
    loop = ConsumeLoop(replay, mapping, engine=engine)
    until = {p: end for p, end in ends.items() if end > starts.get(p, 0)}

    def progress(state: GroupProgress) -> None:
        if on_progress is not None:
            behind = sum(state.lag(p, end=end) for p, end in until.items())
            on_progress(total - behind, total)

    try:
        result = (
            loop.run(until_caught_up=True, timeout_s=timeout_s, until=until, on_progress=progress)
            if until
            else LoopOutcome(caught_up=True)
        )
    finally:
        engine.dispose()
    if not result.caught_up:
        raise ServiceError("the consume loop stopped before the rebuild caught up")
    if on_progress is not None:
        on_progress(total, total)
    return RebuildResult(
        group, len(ends), total, result.messages, result.dead_letters, time.monotonic() - started
    )
