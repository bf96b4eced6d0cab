"""The consume loop: batch → decode → coalesce → apply → dead-letter → commit, forever.

Order per batch (DESIGN.md "Kafka facts", quix-streams' checkpoint): MySQL transaction(s)
commit, then dead letters are produced and acknowledged, then the batch's offsets are
committed (asynchronously, `consumers.ledger`: never blocking the loop). A failure anywhere
before the commit leaves the offsets where they were: the batch is delivered again and
P1/P2 make that harmless (P5). Upserts refused by a secondary UNIQUE collision are held
and retried for a while (`consumers.collisions`); commits wait below them meanwhile.

One batch is applied in a background thread (`consumers.applier`) while the next is fetched
and decoded; the loop waits for its outcome before submitting the next, so at most one
batch is ever in flight (a succeeded batch's commit then overlaps the next one's apply).
Rebalance callbacks run inside `consume()`: `on_revoke` waits for the batch in flight and
commits it (flush, then give the partitions up); `on_lost` waits for it too but commits
nothing, the partitions being someone else's.

When MySQL stays unavailable beyond the in-process retries, the loop pauses its
partitions, seeks back to the failed batch's first offsets and keeps polling (so the group
keeps it), probing MySQL every few seconds; it resumes when the probe succeeds.

`into="d1"` runs the reverse pipeline after cut-over: the reverse topics, in their own
consumer group (`reverse_group_id`), applied by `D1Sink` to the source (the SQLite file or
D1's API); D1 is then what is probed, and the MySQL start check and tombstone pruning do
not run (`consumers.d1_sink` keeps its tombstones in D1). Which topics each direction
reads is `consumers.subscription`: a forward loop never reads a reverse topic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from sqlalchemy.engine import Engine

from consumers.applier import AppliedBatch, BackgroundApplier, FailedBatch, Sink
from consumers.backpressure import Backpressure
from consumers.change import MessageRef
from consumers.coalesce import coalesce_batch
from consumers.collisions import HeldCollisions
from consumers.d1_sink import D1Sink
from consumers.decode import decode_batch
from consumers.dlq import DeadLetterProducer
from consumers.ledger import OffsetLedger
from consumers.offsets import (
    GroupProgress,
    Partition,
    group_progress,
    message_refs,
    partition_lags,
)
from consumers.retry import MYSQL_ERRORS
from consumers.row_versions import prune_tombstones
from consumers.sink import MySQLSink
from consumers.subscription import Into, check_table_names, subscribed_topics, subscription
from worker import metrics
from worker.config import Settings
from worker.db import ping, target_engine
from worker.errors import ServiceError
from worker.kafka import admin_client, consumer_config
from worker.logs import get_logger
from worker.schema.mapping import Mapping
from worker.signals import stop_on_signals
from worker.sources import WritableSource, open_source
from worker.topics import dlq_topic, ensure_topics

log = get_logger(__name__)

POLL_TIMEOUT_S = 0.1  # how long an idle loop waits for a message before its idle work
GATHER_STEP_S = 0.002  # while a batch is applied, how often the next one checks on it
LAG_CHECK_EVERY_S = 5.0
LAG_QUERY_TIMEOUT_S = 1.0
# librdkafka prefetches up to 64 MB by default, and one fetch response may be 50 MB; a few
# batches ahead is all a batch-at-a-time loop can use, and under a large backlog the
# difference is resident memory (measured with ops/bench/bench_apply.py, 1M demo events
# over 354 partitions: peak RSS 224 → 177 MB with the fetch cap, same events/s; the queue
# cap saved ~40 MB at 100k queued events; then a 4 MB queue and 2 MB fetches instead of
# 16 MB and 8 MB: 225 → 138 MB in one run of 2 rounds, events/s x1.00, one process on a
# 1M-event backlog). Callers' overrides win.
# With a queue that small, the queue is full whenever the loop is busy for a moment, and
# librdkafka then postpones each partition's next fetch by `fetch.queue.backoff.ms`, 1 s by
# default: the loop polled an empty queue 41 % of the time while a backlog waited in Kafka
# (py-spy). 10 ms: 200k demo events with one consumer, 16.8k → 26.3k events/s (x1.57 in
# 2 rounds, same CPU per event; ops/bench/bench_apply.py --pipeline --against). The queue
# then stays near its cap, so the cap is resident memory again: on the 1M backlog, 4 MB /
# 2 MB fetches peaked at 133 MB, 3 MB / 2 MB at 131, 2 MB / 2 MB at 128, 2 MB / 1 MB at 119
# (one round each, runtime dependencies only); 200k events, 3 rounds against 4 MB / 2 MB:
# events/s x0.95 (1.02 0.95 0.95) for 2 MB / 1 MB, x1.03 for 2 MB / 2 MB. A record batch
# larger than the fetch cap is still returned whole (KIP-74).
CONSUMER_DEFAULTS: dict[str, object] = {
    "queued.max.messages.kbytes": 2048,
    "fetch.max.bytes": 1024 * 1024,
    "fetch.queue.backoff.ms": 10,
}
PRUNE_EVERY_S = 3600.0
COMMIT_DRAIN_S = 5.0  # on leaving: how long the last commits may take (never a hang)


@dataclass
class LoopOutcome:
    batches: int = 0
    messages: int = 0
    dead_letters: int = 0
    caught_up: bool = False


class ConsumeLoop:
    def __init__(
        self,
        settings: Settings,
        mapping: Mapping,
        *,
        tables: Sequence[str] | None = None,
        engine: Engine | None = None,
        health: metrics.Health | None = None,
        consumer_overrides: dict[str, object] | None = None,
        into: Into = "mysql",
    ) -> None:
        self.settings = settings
        self.mapping = mapping
        self.tables = list(tables) if tables else None
        self.into: Into = into
        check_table_names(mapping.tables, into, self.tables)
        # The reverse direction has its own group: its progress is not the forward one's.
        self.group_id = settings.reverse_group_id if into == "d1" else settings.group_id
        self.engine: Engine | None = None  # MySQL, forward only
        self.source: WritableSource | None = None  # D1 or its file, reverse only
        self.health = health or metrics.Health()
        self.ledger = OffsetLedger()
        self.held = HeldCollisions(settings.consumer_unique_retry_s)
        self.consumer_overrides = {
            **CONSUMER_DEFAULTS,
            "session.timeout.ms": settings.consumer_session_timeout_ms,
            **(consumer_overrides or {}),
            # Last, so no override can take it: without it no offset is ever acknowledged.
            "on_commit": self.ledger.on_commit,
        }
        self.sink: Sink
        if into == "d1":
            self.source = open_source(settings, writable=True)
            self.sink = D1Sink(self.source, mapping)
            probe, target = self._probe_d1, "D1"
        else:
            # One connection per apply lane, and one for the probe and the pruning beside them.
            self.engine = engine or target_engine(
                settings, pool_size=max(5, settings.apply_connections + 1)
            )
            self.sink = MySQLSink(
                self.engine,
                mapping,
                rows_per_statement=settings.rows_per_statement,
                rows_per_transaction=settings.rows_per_transaction,
                connections=settings.apply_connections,
            )
            probe, target = self._probe_mysql, "MySQL"
        self._stop = threading.Event()
        self._admin = admin_client(settings.kafka_bootstrap)
        self._until: dict[Partition, int] | None = None
        self._on_progress: Callable[[GroupProgress], None] | None = None
        self._next_not_yet_log = 0.0
        self.backpressure = Backpressure(probe, self.health, target=target)
        self.outcome = LoopOutcome()
        self._applier: BackgroundApplier | None = None  # set while `run` runs

    # -- public ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its current batch, commit, leave the group and return."""
        self._stop.set()

    def close(self) -> None:
        """Release the target's connections (after `run`)."""
        if isinstance(self.sink, MySQLSink):
            self.sink.close()
        if self.engine is not None:
            self.engine.dispose()
        if self.source is not None:
            self.source.close()

    def run(
        self,
        *,
        until_caught_up: bool = False,
        timeout_s: float | None = None,
        until: dict[Partition, int] | None = None,
        on_progress: Callable[[GroupProgress], None] | None = None,
    ) -> LoopOutcome:
        """Consume until stopped (or caught up); raise `ServiceError` when `timeout_s` passes.

        Caught up (`GroupProgress.caught_up`): the *group* has committed every partition of
        every subscribed topic through its end offset — or through `until`, end offsets
        taken earlier (rebuild) — and is not rebalancing.
        """
        self._until = until
        self._on_progress = on_progress
        prefix = self.settings.topic_prefix
        ensure_topics(
            admin_client(self.settings.kafka_bootstrap),
            prefix,
            [],
            self.settings.topic_partitions,
            self.settings.topic_replication,
        )
        dlq = DeadLetterProducer(self.settings.kafka_bootstrap, dlq_topic(prefix))
        consumer = Consumer(
            consumer_config(
                self.settings.kafka_bootstrap,
                self.group_id,
                protocol=self.settings.consumer_group_protocol,
                **self.consumer_overrides,
            )
        )
        consumer.subscribe(
            subscription(prefix, self.into, self.tables),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        restore = stop_on_signals(self.stop, deadline_s=self.settings.shutdown_deadline_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._applier = BackgroundApplier(self.sink, dlq)
        try:
            self._check_target()
            self._prune()
            self._loop(consumer, until_caught_up, deadline)
            self._finish(consumer)  # the batch in flight: commit it before leaving
            drain = min(COMMIT_DRAIN_S, self.settings.shutdown_deadline_s / 3)
            self.ledger.drain(consumer, drain, ceilings=self.held.ceilings())
        finally:
            restore()
            self._applier.close()  # after an error: let it end, never commit it
            self._applier = None
            consumer.close()  # leaves the group: partitions move on at once
            metrics.PAUSED.set(0)
        return self.outcome

    # -- the loop -------------------------------------------------------------------------
    def _loop(self, consumer: Consumer, until_caught_up: bool, deadline: float | None) -> None:
        next_lag_check = 0.0
        next_prune = time.monotonic() + PRUNE_EVERY_S
        while not self._stop.is_set():
            messages = self._next_batch(consumer)
            self.health.polled()
            if self.backpressure.active:
                self.backpressure.hold_back(consumer, message_refs(messages))
                self.backpressure.probe_and_resume(consumer)
            elif messages:
                self._process(consumer, messages)
            else:
                self._finish(consumer)  # idle: commit now; and "caught up" needs it applied
                self._retry_held()
                self._commit_pending(consumer)  # and what failed or was held earlier
            now = time.monotonic()
            if deadline is not None and now > deadline:
                if not until_caught_up:
                    return  # a bounded run: stop like on SIGTERM
                raise ServiceError(
                    f"not caught up within the timeout ({self.outcome.messages} messages applied)"
                )
            if not self.backpressure.active and (
                (until_caught_up and not messages) or now >= next_lag_check
            ):
                next_lag_check = now + LAG_CHECK_EVERY_S
                # This member's share (and the lag gauges). A short timeout: the loop's own
                # thread waits for it, and while the broker is away every query would
                # otherwise hold the loop (and a stop) for its full timeout.
                lags = partition_lags(consumer, timeout_s=LAG_QUERY_TIMEOUT_S)
                own_done = lags is not None and not any(lags.values())
                # With `until` the topics may grow meanwhile: own partitions need not be empty.
                if until_caught_up and (own_done or self._until is not None):
                    progress = self._group_progress()
                    if progress is not None and progress.caught_up(until=self._until):
                        self.outcome.caught_up = True
                        log.info(
                            "caught up",
                            partitions=len(progress.ends),
                            messages=self.outcome.messages,
                        )
                        return
                    if progress is not None and now >= self._next_not_yet_log:
                        self._next_not_yet_log = now + LAG_CHECK_EVERY_S
                        log.info(
                            "not caught up yet",
                            assigned=len(lags or {}),
                            partitions=len(progress.ends),
                            group_state=progress.group_state,
                            lagging=progress.lagging(),
                        )
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY_S
                self._prune()

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        """Up to `batch_size` messages, batched by what MySQL is doing rather than by a timer.

        While nothing is being applied, a batch is what has arrived, handed on at once: the
        first message, then whatever is already queued behind it. While a batch is being
        applied, the next one gathers what arrives until that apply ends or the batch is
        full. So a light stream waits for no batch to fill (consume(n, timeout) would hold
        each message until n arrived or the timeout passed), and a heavy one is applied in
        batches as large as an apply takes to fill, up to `batch_size`, as before.
        """
        size = self.settings.batch_size
        applier = self._applier
        if applier is None or self.backpressure.active or not applier.busy():
            messages = consumer.consume(num_messages=size, timeout=0)
            if messages:
                return messages
            first = consumer.consume(num_messages=1, timeout=POLL_TIMEOUT_S)
            if not first:
                return first
            return first + consumer.consume(num_messages=size - 1, timeout=0)
        messages = consumer.consume(num_messages=size, timeout=0)
        while len(messages) < size and applier.busy():
            messages += consumer.consume(num_messages=size - len(messages), timeout=GATHER_STEP_S)
        return messages

    def _subscribed_topics(self) -> list[str]:
        """The topics "caught up" counts: exactly this direction's subscription."""
        prefix = self.settings.topic_prefix
        names = [] if self.tables else self._admin.list_topics(timeout=10).topics
        return subscribed_topics(prefix, self.into, self.tables, names)

    def _group_progress(self) -> GroupProgress | None:
        """The group's committed progress, or None while Kafka cannot say (asked again)."""
        try:
            progress = group_progress(self._admin, self.group_id, self._subscribed_topics())
        except KafkaException as exc:
            log.info("group progress unknown for now", error=str(exc))
            return None
        if self._on_progress is not None:
            self._on_progress(progress)
        return progress

    def _process(self, consumer: Consumer, messages: list[Message]) -> None:
        assert self._applier is not None
        sources = message_refs(messages)
        if not sources:
            self._finish(consumer)
            return
        metrics.BATCH_SIZE.observe(len(sources))
        decoded = decode_batch(sources, self.mapping)
        coalesced = coalesce_batch(self.held.queue_behind(decoded.changes))
        previous = self._wait()  # batch N must be done before N+1 starts
        if isinstance(previous, FailedBatch):
            self._failed(consumer, previous)
        if self.backpressure.active:
            self.backpressure.hold_back(consumer, sources)  # N failed: N+1 waits too
            return
        if isinstance(previous, AppliedBatch) and previous.result.collisions:
            coalesced = self.held.queue_behind(coalesced)  # keys N has just held back
        retry, expired = self.held.due()
        if retry:
            coalesced = coalesce_batch(retry) + coalesced  # disjoint keys: same as together
        self._applier.submit(sources, decoded.changes, coalesced, decoded.dead + expired)
        if isinstance(previous, AppliedBatch):
            # N succeeded, so committing it now is what committing it before submitting
            # N+1 would be; this way the commit's round trip overlaps N+1's transaction.
            self._applied(consumer, previous, commit=True)

    def _wait(self) -> AppliedBatch | FailedBatch | None:
        """The outcome of the batch in flight, its held-back collisions settled."""
        outcome = self._applier.wait() if self._applier is not None else None
        if isinstance(outcome, AppliedBatch):
            self.held.settle(outcome.result.collisions)
        elif isinstance(outcome, FailedBatch):
            self.held.failed()
        metrics.HELD_COLLISIONS.set(len(self.held))
        return outcome

    def _retry_held(self) -> None:
        """Idle: retry held-back collisions now (or dead-letter the expired ones)."""
        if self._applier is None or self.backpressure.active:
            return
        retry, expired = self.held.due()
        if retry or expired:
            self._applier.submit([], [], coalesce_batch(retry), expired)

    def _finish(self, consumer: Consumer, *, commit: bool = True) -> None:
        """Wait for the batch in flight; commit its offsets, or pause if MySQL is gone."""
        outcome = self._wait()
        if isinstance(outcome, FailedBatch):
            self._failed(consumer, outcome)
        elif outcome is not None:
            self._applied(consumer, outcome, commit=commit)

    def _failed(self, consumer: Consumer, batch: FailedBatch) -> None:
        self.backpressure.pause(consumer, batch.sources, str(batch.error))

    def _applied(self, consumer: Consumer, outcome: AppliedBatch, *, commit: bool) -> None:
        self.health.mysql_ok = True
        metrics.APPLY_SECONDS.observe(outcome.seconds)
        offsets = self._commit(consumer, outcome.sources) if commit else {}
        self._record(outcome)
        log.debug(
            "batch applied",
            messages=len(outcome.sources),
            dead_letters=outcome.dead,
            offsets=offsets,
        )

    def _commit(self, consumer: Consumer, sources: list[MessageRef]) -> dict[str, int]:
        """Commit asynchronously; returns {"topic[partition]": offset sent} for the log."""
        self.ledger.applied(sources)
        return self._commit_pending(consumer)

    def _commit_pending(self, consumer: Consumer) -> dict[str, int]:
        """Send every offset not yet acknowledged by the group, below any held collision."""
        return self.ledger.commit(consumer, ceilings=self.held.ceilings())

    def _record(self, batch: AppliedBatch) -> None:
        result, changes = batch.result, batch.changes
        for (table, op), count in result.applied.items():
            if count:
                metrics.EVENTS_APPLIED.labels(table, op).inc(count)
        for table, count in result.stale.items():
            if count:
                metrics.EVENTS_STALE.labels(table).inc(count)
        newest = max(map(attrgetter("ts_ms"), changes), default=0)
        if newest:
            metrics.END_TO_END_LAG.set(max(0.0, time.time() - newest / 1000))
        self.outcome.batches += 1
        self.outcome.messages += len(batch.sources)
        self.outcome.dead_letters += batch.dead

    # -- rebalance and signals ------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned", partitions=[f"{p.topic}[{p.partition}]" for p in partitions]
        )
        self.health.assigned = True
        if self.backpressure.active and partitions:
            consumer.pause(partitions)  # still waiting for MySQL

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", partitions=[f"{p.topic}[{p.partition}]" for p in partitions])
        self._finish(consumer)  # flush and commit the batch in flight while they are ours
        self._release(consumer, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost", partitions=[f"{p.topic}[{p.partition}]" for p in partitions])
        self._finish(consumer, commit=False)  # no longer ours: their new owner re-applies it
        self._release(consumer, partitions)

    def _release(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Forget rewinds of partitions we lose: their new owner starts from the committed offset.
        self.backpressure.forget(partitions)
        self.ledger.release(partitions)
        self.held.release(partitions)
        self.health.assigned = bool(set(consumer.assignment()) - set(partitions))

    def _probe_mysql(self) -> None:
        assert self.engine is not None
        ping(self.engine)

    def _probe_d1(self) -> None:
        assert self.source is not None
        self.source.query("SELECT 1")

    def _check_target(self) -> None:
        """Readiness from the start; an unreachable target is handled by the first batch."""
        try:
            self.backpressure.probe()
            self.health.mysql_ok = True  # the readiness flag of whichever target
        except ServiceError as exc:
            log.warning(f"{self.backpressure.target} target unreachable at start", error=str(exc))

    def _prune(self) -> None:
        if self.engine is None:
            return  # the D1 sink's tombstones are not pruned: it runs until cleanup only
        try:
            pruned = prune_tombstones(self.engine, self.settings.tombstone_retention_hours)
        except (*MYSQL_ERRORS, sa.exc.SQLAlchemyError) as exc:
            # The side table may not exist yet, MySQL may be down; a bug still raises.
            log.debug("tombstone prune skipped", error=str(exc))
            return
        if pruned:
            log.info("tombstones pruned", count=pruned)


def run_until_caught_up(
    settings: Settings, mapping: Mapping, timeout_s: float = 300.0, **kwargs: object
) -> LoopOutcome:
    """Consume every table topic until lag is 0, then leave the group (backfill, rebuild, tests)."""
    loop = ConsumeLoop(settings, mapping, **kwargs)  # type: ignore[arg-type]
    try:
        return loop.run(until_caught_up=True, timeout_s=timeout_s)
    finally:
        loop.close()
