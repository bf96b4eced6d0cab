"""Replication status, the cut-over readiness verdict and the rollback verdict.

Per table: lag (topic end offsets minus the apply group's committed offsets), the source time
of the last applied event (read back from the message just before the committed offset,
so no extra state is kept), and the poller's watermark. Globally: dead letters not yet
replayed, and the last verify run. `readiness` turns that into a verdict with reasons.

One `Direction` says which pipeline is read: `FORWARD` (D1 → MySQL: `{prefix}.{table}`, the
apply group, the backfill watermarks) or `REVERSE` (MySQL → D1 after cut-over, issue 16:
`{prefix}.reverse.{table}`, the D1 sink's group, the reverse poller's watermarks).
`rollback_safety` is the reverse side's verdict: may the app's writes go back to D1?
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy.engine import Engine
from tenacity import retry, retry_if_exception, stop_after_delay, wait_fixed

from consumers.dlq import read_dead_letters
from consumers.offsets import GroupProgress, group_progress
from producers.capture_drift import find_drift
from producers.capture_sql import CHANGES_TABLE
from producers.changelog import ChangeLog
from producers.reverse_binlog import binlog_position_saved
from producers.reverse_poller import reverse_watermarks, unread_rows
from producers.watermarks import TABLE_NAME as WATERMARKS_TABLE
from producers.watermarks import WatermarkStore
from worker.config import Settings
from worker.envelope import decode_event
from worker.errors import D1cdcError, EnvelopeError, ServiceError
from worker.kafka import admin_client, consumer_config
from worker.schema.mapping import Mapping
from worker.sources import open_source
from worker.topics import dlq_topic, reverse_topic_for, topic_for
from worker.verify.record import VerifyRun, last_run

_SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
}
DLQ_ACK_GROUP_SUFFIX = ".dlq"


def dlq_ack_group(group_id: str) -> str:
    """The group whose DLQ offsets mark what `dlq replay` re-submitted (status reads it)."""
    return group_id + DLQ_ACK_GROUP_SUFFIX


@dataclass(frozen=True)
class Direction:
    """Which pipeline a status reads: its table topics, its apply group, its watermarks."""

    name: str
    topic_of: Callable[[str, str], str]
    group_of: Callable[[Settings], str]
    watermarks: Callable[[Engine], WatermarkStore]


FORWARD = Direction("forward", topic_for, lambda s: s.group_id, WatermarkStore)
REVERSE = Direction("reverse", reverse_topic_for, lambda s: s.reverse_group_id, reverse_watermarks)

LOOK_BACK_MESSAGES = 3  # read back this many messages per partition for "last applied"


@dataclass
class TableStatus:
    table: str
    end_offset: int = 0
    committed: int = 0
    last_applied_ms: int | None = None
    watermark: str | None = None
    # Reverse only: MySQL rows newer than the reverse poller's watermark (None: unknown),
    # and whether its pass over the table is unfinished (a table without version columns
    # is read whole every cycle: only a finished pass after the write freeze covers it).
    unread: int | None = None
    mid_pass: bool = False

    @property
    def lag(self) -> int:
        return max(self.end_offset - self.committed, 0)


RELAY_BEHIND_S = 30.0  # an unshipped change-log entry older than this: the relay is behind


@dataclass
class CaptureStatus:
    """D1 capture as the source shows it (`None` in `Status` when it is not installed)."""

    problems: list[str] = field(default_factory=list)  # drift: missing/stale triggers, …
    depth: int = 0
    lag_s: float = 0.0
    error: str | None = None  # the source could not be read: state unknown


def collect_capture(settings: Settings, mapping: Mapping) -> CaptureStatus | None:
    """Triggers, log depth and relay lag, or None when the source has no change log."""
    try:
        source = open_source(settings)
    except D1cdcError as exc:
        return CaptureStatus(error=str(exc))
    try:
        names = {str(r["name"]) for r in source.query(_TABLES_SQL)}
        if CHANGES_TABLE not in names:
            return None
        problems = [str(d) for d in find_drift(mapping, source)]
        state = ChangeLog(source).state()
        return CaptureStatus(problems, state.depth, state.lag_s)
    except (D1cdcError, sqlite3.Error) as exc:
        return CaptureStatus(error=str(exc).splitlines()[0])
    finally:
        source.close()


_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table'"


@dataclass
class Status:
    tables: list[TableStatus] = field(default_factory=list)
    dlq_pending: int = 0
    last_verify: VerifyRun | None = None  # forward only: verify compares D1 with MySQL
    group_state: str = "UNKNOWN"  # of the apply group: STABLE, EMPTY, …REBALANCE
    capture: CaptureStatus | None = None  # forward only
    direction: str = FORWARD.name
    binlog: str | None = None  # reverse, with the binlog source: its saved position

    @property
    def total_lag(self) -> int:
        return sum(t.lag for t in self.tables)

    def lagging(self, limit: int = 5) -> str:
        """The lagging tables as `table=lag`, the first `limit` of them."""
        return ", ".join([f"{t.table}={t.lag}" for t in self.tables if t.lag][:limit])

    @property
    def rebalancing(self) -> bool:
        """The group is moving partitions: its committed offsets may be about to change."""
        return "REBALANC" in self.group_state


def _retriable(exc: BaseException) -> bool:
    """A fresh topic has no partition leader for a moment; that is not an outage."""
    if not isinstance(exc, KafkaException):
        return False
    error = exc.args[0]
    return bool(error.retriable()) or error.code() in _SETTLING


@retry(retry=retry_if_exception(_retriable), stop=stop_after_delay(15), wait=wait_fixed(0.5))
def _progress(admin: AdminClient, group: str, topics: list[str]) -> GroupProgress:
    """The group's committed progress (the same definition `consume --until-caught-up` uses)."""
    return group_progress(admin, group, topics)


def _last_applied_ms(reader: Consumer, committed: list[TopicPartition]) -> int | None:
    """Source time of the newest event among the few before each committed offset."""
    newest: int | None = None
    for tp in committed:
        if tp.offset in (OFFSET_INVALID, -1) or tp.offset == 0:
            continue
        start = max(tp.offset - LOOK_BACK_MESSAGES, 0)
        reader.assign([TopicPartition(tp.topic, tp.partition, start)])
        # Exactly the messages that exist below the committed offset: consume returns as
        # soon as it has them (compaction may leave fewer; then the short timeout ends it).
        for message in reader.consume(tp.offset - start, timeout=1.0):
            if message.error() or (message.offset() or 0) >= tp.offset:
                continue
            try:
                ts = decode_event(message.value()).ts_ms
            except EnvelopeError:
                continue  # a tombstone
            newest = ts if newest is None else max(newest, ts)
    return newest


def _watermarks(engine: Engine, direction: Direction) -> dict[str, str]:
    """Each table's poller watermark, described; none before the first backfill."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(WATERMARKS_TABLE):
            return {}  # checked first: WatermarkStore would create the table
    return {
        table: f"{mark.phase}, version={mark.version}, rows={mark.rows_emitted}"
        for table, mark in direction.watermarks(engine).all().items()
    }


def _reverse_dead_letters(settings: Settings) -> int:
    """Pending dead letters whose event came from a reverse topic. Both directions share
    the dead-letter topic and `dlq replay` acknowledges for the apply group, so this reads
    the pending entries and counts those of the D1 sink (their origin topic says so)."""
    reverse = reverse_topic_for(settings.topic_prefix, "")
    pending = read_dead_letters(
        settings.kafka_bootstrap,
        dlq_topic(settings.topic_prefix),
        pending_for=dlq_ack_group(settings.group_id),
    )
    return sum(1 for r in pending if r.topic.startswith(reverse))


def collect_status(
    settings: Settings,
    tables: list[str],
    engine: Engine,
    *,
    last_applied: bool = True,
    mapping: Mapping | None = None,
    direction: Direction = FORWARD,
) -> Status:
    """Read everything `status` shows; raise ServiceError when Kafka cannot answer.

    `last_applied=False` skips reading messages back (cheap enough to poll every second).
    The capture state (with `mapping`) and the last verify run belong to `FORWARD` only.
    """
    prefix = settings.topic_prefix
    reader_cfg = consumer_config(settings.kafka_bootstrap, f"d1cdc-status-{uuid.uuid4().hex[:8]}")
    reader = Consumer(reader_cfg)
    status = Status(direction=direction.name)
    topic_of = direction.topic_of
    try:
        admin = admin_client(settings.kafka_bootstrap)
        existing = set(admin.list_topics(timeout=10).topics)
        watermarks = _watermarks(engine, direction)
        topics = [topic_of(prefix, t) for t in tables if topic_of(prefix, t) in existing]
        progress = _progress(admin, direction.group_of(settings), topics)
        status.group_state = progress.group_state
        for table in tables:
            topic = topic_of(prefix, table)
            row = TableStatus(table, watermark=watermarks.get(table))
            if topic in existing:
                parts = [p for p in progress.ends if p[0] == topic]
                row.end_offset = sum(progress.ends[p] - progress.starts.get(p, 0) for p in parts)
                row.committed = row.end_offset - progress.lag_of(topic)
                if last_applied:
                    committed = [
                        TopicPartition(t, n, progress.committed.get((t, n), -1)) for t, n in parts
                    ]
                    row.last_applied_ms = _last_applied_ms(reader, committed)
            status.tables.append(row)
        dlq = dlq_topic(prefix)
        if dlq in existing and direction is FORWARD:
            status.dlq_pending = _progress(admin, dlq_ack_group(settings.group_id), [dlq]).total_lag
        elif dlq in existing:
            status.dlq_pending = _reverse_dead_letters(settings)
    except KafkaException as exc:
        raise ServiceError(f"Kafka {settings.kafka_bootstrap}: {exc}") from None
    finally:
        reader.close()
    if direction is FORWARD:
        status.last_verify = last_run(engine)
        if mapping is not None:
            status.capture = collect_capture(settings, mapping)
    elif (binlog := binlog_position_saved(engine)) is not None:
        # The binlog source ships MySQL's writes; the poller's marks stay where `cutover
        # start` put them, so they say nothing about what was shipped.
        status.binlog = f"{binlog.log_file}:{binlog.log_pos}"
    elif mapping is not None and watermarks:
        marks = direction.watermarks(engine).all()
        for row in status.tables:
            mark = marks.get(row.table)
            row.unread = unread_rows(engine, mapping.table(row.table), mark)
            row.mid_pass = mark is not None and mark.phase != "incremental" and mark.pk is not None
    return status


def readiness(status: Status, *, verify_max_age: timedelta) -> list[str]:
    """Reasons the target is NOT ready for cut-over; an empty list means ready."""
    reasons = []
    if status.total_lag:
        reasons.append(f"consumer lag {status.total_lag} ({status.lagging()})")
    if status.dlq_pending:
        reasons.append(f"{status.dlq_pending} dead-lettered event(s) not replayed")
    capture = status.capture
    if capture is not None and capture.problems:
        reasons.append(
            f"capture drift: {len(capture.problems)} problem(s), e.g. {capture.problems[0]} "
            "(writes may not be captured: `d1cdc capture check`)"
        )
    if capture is not None and capture.depth and capture.lag_s > RELAY_BEHIND_S:
        reasons.append(
            f"relay behind: {capture.depth} change-log entries, the oldest {capture.lag_s:.0f} s"
        )
    run = status.last_verify
    now = datetime.now(UTC).replace(tzinfo=None)
    if run is None:
        reasons.append("no verify run recorded")
    elif not run.clean:
        reasons.append(f"last verify found {run.differences} difference(s)")
    elif now - run.finished_at > verify_max_age:
        minutes = (now - run.finished_at).total_seconds() / 60
        reasons.append(f"last clean verify is {minutes:.0f} min old")
    return reasons


def rollback_safety(status: Status) -> list[str]:
    """Reasons the app's writes may NOT go back to D1 yet (a `REVERSE` status); empty: safe.

    Safe when the D1 sink's group has applied every reverse event (lag 0, not in a
    rebalance), none of its events waits in the dead-letter topic, and the reverse poller
    has a watermark for every table (without one it never read that table: D1 may lack
    what the app wrote to MySQL there).
    """
    reasons = []
    if status.total_lag:
        reasons.append(f"reverse lag {status.total_lag} ({status.lagging()})")
    if status.rebalancing:
        reasons.append(f"the reverse group is rebalancing ({status.group_state})")
    if status.dlq_pending:
        reasons.append(f"{status.dlq_pending} dead-lettered reverse event(s) not replayed")
    unread = [f"{t.table}={t.unread}" for t in status.tables if t.unread]
    if unread:
        reasons.append(
            f"MySQL holds rows the reverse poller has not shipped yet ({', '.join(unread[:5])}): "
            "with writes frozen, let `backfill --reverse` finish a pass"
        )
    unfinished = [t.table for t in status.tables if t.mid_pass]
    if unfinished:
        reasons.append(
            f"the reverse poller is part-way through {', '.join(unfinished[:5])}: let "
            "`backfill --reverse` finish a pass after the write freeze"
        )
    unmarked = [t.table for t in status.tables if t.watermark is None]
    if unmarked:
        reasons.append(
            f"no reverse watermark for {', '.join(unmarked[:5])}"
            + (f" and {len(unmarked) - 5} more" if len(unmarked) > 5 else "")
            + " (`d1cdc cutover start` writes them)"
        )
    return reasons
