""" "Caught up" means the whole group, not one member's share (issue 11, defect 3).

Before, `consume --until-caught-up` looked only at the partitions assigned to itself.
After a broker outage, the final run had 6 of 18 partitions: dead members that had not
yet timed out still held the rest. It found lag 0 on its 6, printed "caught up" and
exited 0, and 2,889 rows were missing.

Here, member A holds part of the partitions and never commits. It stands for a member
that is behind, or one that is dead but not yet expired. Member B must keep going until
the group's committed offsets reach the end on every partition, which happens once A
leaves and B takes A's partitions over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer

from consumers.loop import LoopOutcome, run_until_caught_up
from consumers.offsets import group_progress
from tests.consume_helpers import MAPPING, create_topics, prepare_target, produce, rows, user_event
from worker.config import Settings
from worker.kafka import admin_client, consumer_config

pytestmark = pytest.mark.integration


def test_until_caught_up_waits_for_partitions_another_member_holds(
    make_settings: Callable[..., Settings], kafka_bootstrap: str
) -> None:
    settings = make_settings(batch_size=20)
    prefix = settings.topic_prefix
    create_topics(kafka_bootstrap, prefix, ["user", "tag"], partitions=6)
    engine = prepare_target(settings.target_url.get_secret_value())
    produce(kafka_bootstrap, prefix, [user_event(f"u{i}", 1) for i in range(120)])

    # Member A: in the group, holding partitions, consuming nothing it ever commits.
    stop_a = threading.Event()
    member_a = Consumer(
        consumer_config(
            kafka_bootstrap, settings.group_id, protocol=settings.consumer_group_protocol
        )
    )
    member_a.subscribe([f"^{prefix}\\.[^_].*"])
    deadline = time.monotonic() + 30
    while not member_a.assignment() and time.monotonic() < deadline:
        member_a.poll(0.2)
    assert member_a.assignment(), "member A was never assigned partitions"

    def hold() -> None:
        while not stop_a.is_set():
            member_a.poll(0.2)  # keeps its membership; never commits
        member_a.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()

    outcome: list[LoopOutcome] = []
    member_b = threading.Thread(
        target=lambda: outcome.append(run_until_caught_up(settings, MAPPING, timeout_s=150)),
        daemon=True,
    )
    member_b.start()
    try:
        member_b.join(15)  # B has long applied its own share by now
        if not member_b.is_alive():
            # B says caught up while A is still in the group: only true if B was given
            # every partition after all (the broker's assignor may do that under KIP-848).
            assert outcome and outcome[0].caught_up
            assert set(rows(engine, "user")) == {f"u{i}" for i in range(120)}, (
                "B said 'caught up' while events on A's partitions were not applied"
            )
        else:
            progress = group_progress(
                admin_client(kafka_bootstrap),
                settings.group_id,
                [f"{prefix}.user", f"{prefix}.tag"],
            )
            assert progress.total_lag > 0 and not progress.caught_up()
    finally:
        stop_a.set()  # A leaves: its partitions move to B
        holder.join(30)
    member_b.join(150)
    assert outcome and outcome[0].caught_up
    assert set(rows(engine, "user")) == {f"u{i}" for i in range(120)}
    done = group_progress(
        admin_client(kafka_bootstrap), settings.group_id, [f"{prefix}.user", f"{prefix}.tag"]
    )
    assert done.total_lag == 0 and done.caught_up()
    engine.dispose()
