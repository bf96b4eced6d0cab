"""The backfill poller: source rows → `origin: "backfill"` upserts, resumable by watermark.

Per table, in foreign-key level order (the mapping's `level`), page through the source
with keyset paging (see `producers.keyset`), emit each page through the `ChangeEmitter`,
`flush()` until Kafka acknowledged all of it, and only then save the table's watermark.
A `kill -9` therefore resumes at or before the last acknowledged row: no gap, and the
duplicates it may cause are harmless (consumers are idempotent and version-guarded).

What plain watermark polling misses, and what covers it here (DESIGN.md):
- rows sharing the watermark's timestamp → keyset on (version, pk) plus the lookback;
- late commits (`updatedAt` set before the write commits) → every cycle re-reads from
  watermark - `lookback_s`;
- writes that do not bump `updatedAt` → not visible to polling; the app shim emits them,
  and tables without a version column are fully re-scanned every cycle;
- hard deletes → key-set diff against the target (`producers.deletes`).
Rows are emitted in their raw source representation; the consumer converts them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producers.deletes import find_deleted_keys, target_has_rows
from producers.emitter import ChangeEmitter
from producers.keyset import SQLITE, Dialect, Watermark, lookback_floor, next_page, start_watermark
from producers.watermarks import WatermarkStore
from worker.db import root_cause
from worker.errors import ServiceError, UnshippableError
from worker.logs import get_logger
from worker.schema.mapping import TableMapping
from worker.sources.base import Source

ORIGIN = "backfill"
_log = get_logger("d1cdc.backfill")


class ProgressSink(Protocol):
    enabled: bool  # False: nobody sees a total, so the count(*) scan is skipped

    def start(self, table: str, total: int | None) -> None: ...
    def advance(self, table: str, rows: int) -> None: ...


class NoProgress:
    enabled = False

    def start(self, table: str, total: int | None) -> None:
        pass

    def advance(self, table: str, rows: int) -> None:
        pass


@dataclass(frozen=True)
class BackfillOptions:
    chunk: int = 5000
    lookback_s: float = 300.0
    detect_deletes: bool = True
    deletes_every_s: float = 0.0  # at most one delete diff per table this often (0: each pass)
    flush_timeout_s: float = 60.0
    settle_timeout_s: float = 120.0  # a one-shot pass waits this long for consumers


@dataclass(frozen=True)
class TableResult:
    table: str
    emitted: int
    deleted: int
    seconds: float
    completed: bool  # False when stopped (SIGTERM) before the table's pass ended


# What a follow cycle rides out: the target or the source not answering for a while.
OUTAGES = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
    ServiceError,
    sqlite3.OperationalError,
)
MAX_BACKOFF_S = 30.0
UNSETTLED_WARN_EVERY_S = 60.0  # a follower under steady writes meets this every cycle


def _at_or_above(value: Any, floor: Any) -> bool:
    if floor is None:
        return True
    try:
        return value is not None and bool(value >= floor)
    except TypeError:  # mixed storage classes: not remembered, so sent again (harmless)
        return False


class Backfill:
    origin = ORIGIN
    dialect: Dialect = SQLITE  # how `source` is asked (the reverse poller reads MySQL)

    def __init__(
        self,
        source: Source,
        emitter: ChangeEmitter,
        store: WatermarkStore,
        target: Engine,
        options: BackfillOptions | None = None,
        *,
        progress: ProgressSink | None = None,
        stop: threading.Event | None = None,
        applied: Callable[[str], Callable[[], bool]] | None = None,
        before_pass: Callable[[], None] | None = None,
    ) -> None:
        """`before_pass()`, called before every pass, raises to stop the poller (a forward
        poller once the cut-over has started, a reverse one once it was rolled back).

        `applied(table)`, called when a table's pass starts, notes where the table's topic
        ends *now* and returns a check: has the target applied everything up to there? (The
        CLI gives it; it asks Kafka for the apply group's committed offsets.) Without it,
        the delete diff runs against the target as it is."""
        self.source = source
        self.emitter = emitter
        self.store = store
        self.target = target
        self.options = options or BackfillOptions()
        self.progress: ProgressSink = progress or NoProgress()
        self.stop = stop or threading.Event()
        self.applied = applied
        self.before_pass = before_pass
        self.following = False
        self._pending: list[tuple[int, Watermark]] = []  # (last sequence, page watermark)
        self.cycles = 0  # completed passes over all tables (watchable from another thread)
        self._refused: set[tuple[str, bytes, str]] = set()  # events dead-lettered as too big
        # Per table, rows of the lookback window already sent: key → version.
        self._sent: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
        self.skipped_unchanged = 0  # window rows not re-sent (same version as last sent)
        self._unsettled_warned: dict[str, float] = {}  # table → when last warned
        self._last_diff: dict[str, float] = {}  # table → when its delete diff last ran
        self._waiting: dict[str, Callable[[], bool]] = {}  # follower: checks kept until met

    def run_once(self, tables: list[TableMapping]) -> list[TableResult]:
        """One pass over `tables`, parents before children."""
        if self.before_pass is not None:
            self.before_pass()
        results = []
        for table in sorted(tables, key=lambda t: (t.level, t.name)):
            if self.stop.is_set():
                break
            result = self.run_table(table)
            _log.info(
                "table pass done",
                table=table.name,
                emitted=result.emitted,
                deleted=result.deleted,
                seconds=round(result.seconds, 2),
                completed=result.completed,
            )
            results.append(result)
        if not self.stop.is_set():
            self.cycles += 1
        return results

    def follow(self, tables: list[TableMapping], interval_s: float) -> int:
        """Poll until `stop` is set; returns the number of cycles run.

        A cycle that fails because the target or the source is unavailable (MariaDB
        restarting, the network) is retried with backoff, like the consumers pause and
        resume: the watermarks saved so far are kept, and pages emitted but not yet
        checkpointed are simply emitted again (the apply path is idempotent)."""
        started, failures = self.cycles, 0
        self.following = True
        while not self.stop.is_set():
            try:
                self.run_once(tables)
            except OUTAGES as exc:
                failures += 1
                self._pending.clear()  # marks of the failed cycle: never saved for another
                delay = min(MAX_BACKOFF_S, 0.5 * 2 ** min(failures, 8))
                _log.warning(
                    "backfill cycle failed: target unavailable; retrying",
                    error=root_cause(exc),
                    retry_in_s=round(delay, 1),
                    failures=failures,
                )
                self.stop.wait(delay)
                continue
            if failures:
                _log.info("backfill resumed", after_failures=failures)
            failures = 0
            self.stop.wait(interval_s)
        return self.cycles - started

    def run_table(self, table: TableMapping) -> TableResult:
        started = time.monotonic()
        # Noted before this pass emits anything: its own events need not be applied first.
        detect = self.options.detect_deletes and self._diff_due(table.name)
        settled = self._settle_check(table.name) if self.applied and detect else None
        mark = self.store.load(table.name) or start_watermark(table)
        emitted = 0
        if mark.phase in ("snapshot", "scan"):
            mark, count, finished = self._key_pass(table, mark)
            emitted += count
            if not finished:
                return TableResult(table.name, emitted, 0, time.monotonic() - started, False)
        if mark.phase == "incremental":
            mark, count, finished = self._incremental_pass(table, mark)
            emitted += count
            if not finished:
                return TableResult(table.name, emitted, 0, time.monotonic() - started, False)
        deleted = self._emit_deletes(table, settled) if detect else 0
        return TableResult(table.name, emitted, deleted, time.monotonic() - started, True)

    # -- passes ------------------------------------------------------------------------

    def _key_pass(self, table: TableMapping, mark: Watermark) -> tuple[Watermark, int, bool]:
        """Page by primary key from `mark.pk`; on completion move to the next phase."""
        if mark.phase == "snapshot" and mark.pk is None:
            # Everything changed after this moment has a version ≥ high (minus late commits,
            # which the lookback covers), so the incremental phase can start from it.
            version = self.dialect.quote(table.version_columns[0])
            high = self._scalar(f"SELECT max({version}) AS v FROM {self.dialect.quote(table.name)}")
            mark = replace(mark, snapshot_high=high)
        self.progress.start(table.name, self._count(table) if self.progress.enabled else None)
        # Rows the first incremental pass will re-read (its window starts a lookback below
        # the snapshot's high version) are remembered, so they are not sent twice.
        remember = None
        if mark.phase == "snapshot" and table.version_columns:
            kind = table.columns[table.version_columns[0]].type.kind
            remember = lookback_floor(mark.snapshot_high, kind, self.options.lookback_s)
        mark, emitted, finished = self._page_through(table, mark, remember_from=remember)
        if not finished:
            return mark, emitted, False
        if mark.phase == "snapshot":
            mark = Watermark(
                "incremental", version=mark.snapshot_high, rows_emitted=mark.rows_emitted
            )
        else:
            mark = Watermark("scan", rows_emitted=mark.rows_emitted)  # next cycle: from the top
        self.store.save(table.name, mark)
        return mark, emitted, True

    def _incremental_pass(
        self, table: TableMapping, mark: Watermark
    ) -> tuple[Watermark, int, bool]:
        kind = table.columns[table.version_columns[0]].type.kind
        floor = lookback_floor(mark.version, kind, self.options.lookback_s)
        self._forget_below(table.name, floor)
        self.progress.start(table.name, None)
        return self._page_through(table, mark, floor=floor)

    def _forget_below(self, table: str, floor: Any) -> None:
        """Drop the rows sent earlier whose version fell out of the lookback window."""
        sent = self._sent.setdefault(table, {})
        for key, version in list(sent.items()):
            try:
                below = floor is not None and version[0] is not None and version[0] < floor
            except TypeError:  # mixed storage classes in one column: keep nothing uncertain
                below = True
            if below:
                del sent[key]

    def _page_through(
        self, table: TableMapping, mark: Watermark, *, floor: Any = None, remember_from: Any = None
    ) -> tuple[Watermark, int, bool]:
        """Emit pages after `mark` until a short page (finished: True) or a stop request
        (False); either way every page in flight is settled and its watermark saved."""
        emitted, first = 0, True
        while not self.stop.is_set():
            page = next_page(
                table, mark, self.options.chunk, floor=floor, first=first, dialect=self.dialect
            )
            first = False
            read_ms = time.time_ns() // 1_000_000  # before the read: when the rows existed
            rows = self.source.query(page.sql, page.params)
            if rows:
                mark = mark.advanced(rows[-1], table, len(rows))
                in_window = floor is not None
                self._emit(
                    table, rows, mark, read_ms,
                    in_window=in_window, remember_from=floor if in_window else remember_from,
                )  # fmt: skip
                emitted += len(rows)
            if len(rows) < self.options.chunk:
                self._settle(table)
                return mark, emitted, True
        self._settle(table)
        return mark, emitted, False

    def _emit(
        self,
        table: TableMapping,
        rows: list[dict[str, Any]],
        mark: Watermark,
        read_ms: int,
        *,
        in_window: bool = False,
        remember_from: Any = None,
    ) -> None:
        """Produce a page without waiting for it; checkpoint pages Kafka already acked.

        Each event's `ts_ms` is the time just before the page was read, not when it is
        emitted: a row seen then existed then, so a delete committed after the read (and
        before the emit) still wins over it (`consumers.change.supersedes`).

        Waiting for each page's acknowledgement before reading the next one would cost a
        broker round trip (plus linger) per page; instead the next page is read while this
        one is in flight, and a page's watermark is saved once every event up to its last
        one is acknowledged (the emitter's `acked_through`).

        `in_window`: an incremental pass re-reads its lookback window every cycle; a row this
        poller already sent at the same version is not sent again (the consumers would only
        drop it: a backfill event loses version ties), so a follow cycle emits what changed,
        not the whole window again."""
        pk, versions = table.primary_key, table.version_columns
        sent = self._sent.setdefault(table.name, {})
        for row in rows:
            if versions and (in_window or remember_from is not None):
                key, version = tuple(row[c] for c in pk), tuple(row[c] for c in versions)
                if in_window and sent.get(key) == version:
                    self.skipped_unchanged += 1
                    continue
                if _at_or_above(version[0], remember_from):
                    sent[key] = version
            try:
                self._emit_row(table, row, read_ms)
            except UnshippableError as exc:  # one row must not stop every later one
                # The lookback re-reads it: one letter per version of the row is enough.
                version = tuple(row.get(c) for c in table.version_columns) or (len(exc.value),)
                seen = (exc.topic, exc.key, repr(version))
                if seen not in self._refused:
                    self._refused.add(seen)
                    self.emitter.dead_letter(exc)
        self.emitter.poll(0)
        self._pending.append((self.emitter.last_sequence, mark))
        self._save_acknowledged(table)
        self.progress.advance(table.name, len(rows))

    def _emit_row(self, table: TableMapping, row: dict[str, Any], read_ms: int) -> None:
        key = {c: row[c] for c in table.primary_key}
        self.emitter.upsert(table.name, row, key=key, origin=self.origin, ts_ms=read_ms)

    def _deleted_keys(self, table: TableMapping) -> list[tuple[Any, ...]]:
        """Keys the replica (the target) holds that the source no longer has."""
        return find_deleted_keys(self.source, self.target, table)

    def _replica_has_rows(self, table: TableMapping) -> bool:
        return target_has_rows(self.target, table)

    def _save_acknowledged(self, table: TableMapping) -> None:
        acked = [i for i, (seq, _) in enumerate(self._pending) if seq <= self.emitter.acked_through]
        if acked:
            self.store.save(table.name, self._pending[acked[-1]][1])
            del self._pending[: acked[-1] + 1]

    def _settle(self, table: TableMapping) -> None:
        """Wait for every page in flight, then save the last watermark (end of a pass/stop)."""
        self.emitter.flush(self.options.flush_timeout_s)
        self._save_acknowledged(table)

    def _settle_check(self, table: str) -> Callable[[], bool]:
        """`applied(table)`, noted before this pass emits anything. A follower keeps the
        check it noted in an earlier cycle until it is met: under steady writes a check
        noted now is never met at the end of the same short cycle, and re-noting it every
        cycle would starve the diff. A delete the older check lets through unseen (an
        insert and its delete both produced after it was noted) is found by the next diff."""
        assert self.applied is not None
        if not self.following:
            return self.applied(table)
        if table not in self._waiting:
            self._waiting[table] = self.applied(table)
        return self._waiting[table]

    def _diff_ran(self, table: str) -> None:
        self._waiting.pop(table, None)
        self._last_diff[table] = time.monotonic()

    def _diff_due(self, table: str) -> bool:
        last = self._last_diff.get(table)
        return last is None or time.monotonic() - last >= self.options.deletes_every_s

    def _emit_deletes(self, table: TableMapping, settled: Callable[[], bool] | None) -> int:
        if settled is not None and not self._target_settled(table, settled):
            return 0  # not counted as run: the next pass tries again
        self._diff_ran(table.name)
        gone = self._deleted_keys(table)
        for key in gone:
            self.emitter.delete(
                table.name, dict(zip(table.primary_key, key, strict=True)), origin=self.origin
            )
        if gone:
            self.emitter.flush(self.options.flush_timeout_s)
            _log.info("deletes emitted", table=table.name, count=len(gone))
        return len(gone)

    def _target_settled(self, table: TableMapping, settled: Callable[[], bool]) -> bool:
        """Has the target applied every event of the table's topic produced before this
        pass began?

        The delete diff compares the source with the target *as applied*: while consumers
        lag, an insert still in flight is absent from the target's keys, so its later delete
        at the source is never seen (an extra row stays). So the diff waits, up to
        `settle_timeout_s`, for the apply group to catch up on the table (a follower does
        not wait: it checks again next cycle); when it does not, deletes are skipped this
        pass with a warning — never guessed. A follower asks Kafka first: over D1's API
        (the reverse poller's replica) the probe of the table is a request."""
        if self.following:
            if not settled():
                self._warn_unsettled(table.name)
                return False
            self._diff_ran(table.name)  # an empty replica counts: nothing to delete there
            return self._replica_has_rows(table)
        if not self._replica_has_rows(table):
            return False  # nothing there to delete: no need to wait for anyone
        deadline = time.monotonic() + (0 if self.following else self.options.settle_timeout_s)
        while not settled():
            if time.monotonic() >= deadline or self.stop.is_set():
                self._warn_unsettled(table.name)
                return False
            self.stop.wait(0.5)
        return True

    def _warn_unsettled(
        self, table: str, why: str = "consumers have not applied this table's events yet"
    ) -> None:
        now = time.monotonic()
        last = self._unsettled_warned.get(table)
        if last is not None and now - last < UNSETTLED_WARN_EVERY_S:
            return
        self._unsettled_warned[table] = now
        _log.warning(
            f"{why}; deletes not checked this pass"
            + (" (said once a minute while following)" if self.following else ""),
            table=table,
        )

    def _scalar(self, sql: str) -> Any:
        rows = self.source.query(sql)
        return next(iter(rows[0].values())) if rows else None

    def _count(self, table: TableMapping) -> int:
        name = self.dialect.quote(table.name)
        return int(self._scalar(f"SELECT count(*) AS n FROM {name}") or 0)
