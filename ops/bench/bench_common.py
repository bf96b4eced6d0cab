"""Helpers shared by the benchmarks in this directory (run as scripts: `import bench_common`)."""

from __future__ import annotations

import time

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient


def wait_for_group(
    admin: AdminClient, group: str, members: int, partitions: int = 0, timeout: float = 120
) -> None:
    """Until `group` is stable with `members` members holding at least `partitions`
    partitions between them (a cooperative rebalance is stable between its two rounds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            assigned = sum(len(m.assignment.topic_partitions) for m in description.members)
            if (
                description.state == ConsumerGroupState.STABLE
                and len(description.members) == members
                and assigned >= partitions
            ):
                return
        except KafkaException:
            pass  # the group does not exist until the first consumer joins
        time.sleep(0.5)
    raise SystemExit(f"consumer group {group} never reached {members} stable members")


def assigned_members(admin: AdminClient, group: str) -> list[str]:
    """The member ids of `group` that hold at least one partition now ([] while unknown)."""
    return [m for m, held in group_members(admin, group).items() if held]


def group_members(admin: AdminClient, group: str) -> dict[str, bool]:
    """Every member id of `group` now, joined or not yet assigned: does it hold a partition?"""
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException:
        return {}
    return {m.member_id: bool(m.assignment.topic_partitions) for m in description.members}
