"""The loop survives fresh topics: unknown lag is waited for (commits: test_offset_ledger)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition


def test_lag_is_unknown_not_fatal_while_a_fresh_topic_has_no_leader() -> None:
    """NOT_LEADER_FOR_PARTITION from a watermark query means "ask later", not a crash."""
    from consumers.offsets import partition_lags

    class NoLeaderYet:
        def assignment(self) -> list[TopicPartition]:
            return [TopicPartition("p.user", 0)]

        def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
            return [TopicPartition("p.user", 0, 3)]

        def get_watermark_offsets(
            self, tp: TopicPartition, timeout: float = 0, cached: bool = False
        ) -> tuple[int, int]:
            if cached:
                return (-1, -1)
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))

    assert partition_lags(NoLeaderYet()) is None  # type: ignore[arg-type]
