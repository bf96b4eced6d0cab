"""MySQLSink: apply a coalesced batch in bounded transactions, isolating poison rows.

Per transaction (≤ `rows_per_transaction` changes) and per table: read the side-table
state of the batch's keys, plan (`consumers.plan`), run guarded deletes, check secondary
UNIQUE collisions, run the multi-row guarded upserts (≤ `rows_per_statement` rows each),
then write the side table. A batch is shared among `connections` lanes applied at once
(`consumers.lanes`): keys are disjoint across lanes. Transient errors are retried
(`consumers.retry`); if MySQL stays unavailable a `ServiceError` reaches the consume loop,
which pauses and rewinds. A row error (MySQL refuses a value) rolls the transaction back
and the changes are bisected until the culprit is alone: it is dead-lettered with MySQL's
reason, everything else applies.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

import sqlalchemy as sa
from pymysql.cursors import Cursor
from sqlalchemy.engine import Connection, Engine

from consumers import row_versions, sql
from consumers.change import Change, DeadLetter
from consumers.lane_connection import LaneConnection
from consumers.lanes import split_lanes
from consumers.literals import RowTooLarge, execute_upsert, row_renderer
from consumers.plan import TablePlan, plan_table
from consumers.retry import (
    MYSQL_ERRORS,
    is_row_rejection,
    is_transient,
    mysql_errno,
    mysql_message,
    with_retries,
)
from consumers.unique import find_unique_collisions
from worker.chunking import chunks
from worker.errors import RowRefusedError, SchemaError, ServiceError
from worker.logs import get_logger
from worker.schema.convert import RESULT_TYPES
from worker.schema.mapping import Mapping, TableMapping

log = get_logger(__name__)


@dataclass
class ApplyResult:
    applied: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, op) → n
    stale: Counter[str] = field(default_factory=Counter)
    dead: list[DeadLetter] = field(default_factory=list)
    # Upserts held back because a secondary UNIQUE value belongs to another key's row: often
    # transient (the write freeing it is on another partition, not applied yet), so the
    # consume loop retries them for a while before it dead-letters them (consumers.unique).
    collisions: list[tuple[Change, str]] = field(default_factory=list)

    def merge(self, other: ApplyResult) -> None:
        self.applied.update(other.applied)
        self.stale.update(other.stale)
        self.dead.extend(other.dead)
        self.collisions.extend(other.collisions)


class _RowRejected(Exception):
    """One row of the transaction cannot be stored; the message says why."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def _refused(change: Change, exc: _RowRejected) -> RowRefusedError:
    """The dead letter's cause: table, key, MySQL's reason, and what to do."""
    return RowRefusedError(
        f"{change.table} key={change.identity[1]}: {exc} (fix the value at the source or the "
        "target schema, then `d1cdc dlq replay`)",
        errno=exc.errno,
    )


class MySQLSink:
    def __init__(
        self,
        engine: Engine,
        mapping: Mapping,
        *,
        rows_per_statement: int = 500,
        rows_per_transaction: int = 5000,
        connections: int = 1,
    ) -> None:
        self.engine = engine
        self.mapping = mapping
        self.rows_per_statement = rows_per_statement
        self.rows_per_transaction = rows_per_transaction
        tables = mapping.tables.values()
        self.connections = connections  # 1 where the target has foreign keys (`apply`)
        self._whole_tables = {t.name for t in tables if _one_lane_only(t)}
        self._lanes: ThreadPoolExecutor | None = None  # the lanes beyond the caller's own
        self._connections: dict[int, LaneConnection] = {}  # by lane
        self._upserts = {
            (t.name, strict): sql.build_upsert(t, strict=strict)
            for t in mapping.tables.values()
            for strict in (False, True)
        }
        self._tables_with_states: set[str] = set()  # the side table's probe is skipped
        self._deletes = {
            (t.name, guarded): sql.build_delete(t, guarded=guarded)
            for t in mapping.tables.values()
            for guarded in (False, True)
        }
        self._row_values = {t.name: sql.row_values(t) for t in mapping.tables.values()}
        self._renderers = {
            t.name: row_renderer([RESULT_TYPES[c.type.kind] for c in t.columns.values()])
            for t in mapping.tables.values()
        }
        self._side_table_ready = False
        self._max_packet: int | None = None

    def _read_max_packet(self) -> int | None:
        """The server's max_allowed_packet (None when it does not say: then not checked)."""
        try:
            with self.engine.connect() as conn:
                value = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
        except MYSQL_ERRORS as exc:
            if is_transient(exc):
                raise  # with_retries retries it
            return None
        return int(value) if value is not None else None

    def _prepare(self) -> None:
        """Once, before the first batch: the side table, the packet limit, the lanes."""
        with_retries(lambda: row_versions.ensure_side_table(self.engine))
        self._max_packet = with_retries(self._read_max_packet)
        if self.connections > 1 and with_retries(self._has_foreign_keys):
            log.info(
                "foreign keys in the target (or it cannot say): one connection applies each batch"
            )
            self.connections = 1

    def _has_foreign_keys(self) -> bool:
        """Does the target database have FOREIGN KEY constraints (`schema apply --foreign-keys`)?

        Then one connection: a child row's check locks its parent row, which another lane
        may be writing, and each would wait for the other. Unknown counts as yes.
        """
        query = (
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() OR UNIQUE_CONSTRAINT_SCHEMA = DATABASE()"
        )
        try:
            with self.engine.connect() as conn:
                return bool(conn.exec_driver_sql(query).scalar())
        except MYSQL_ERRORS as exc:
            if is_transient(exc):
                raise  # with_retries retries it
            return True

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Apply coalesced `changes`; returns counts and the dead letters of refused rows."""
        if not self._side_table_ready:
            try:
                self._prepare()
            except MYSQL_ERRORS as exc:
                if not is_transient(exc):
                    raise
                # Still unavailable after the retries: the loop pauses, as for a batch.
                raise ServiceError(f"MySQL target unavailable: {mysql_message(exc)}") from None
            self._side_table_ready = True
        lanes = split_lanes(
            changes,
            self.connections,
            whole=self._whole_tables,
            split_from=min(self.rows_per_statement, self.rows_per_transaction),
        )
        if len(lanes) <= 1:
            return self._apply_lane(0, lanes[0] if lanes else [])
        if self._lanes is None:
            self._lanes = ThreadPoolExecutor(
                max_workers=self.connections - 1, thread_name_prefix="d1cdc-lane"
            )
        others: list[Future[ApplyResult]] = [
            self._lanes.submit(self._apply_lane, i, lane) for i, lane in enumerate(lanes[1:], 1)
        ]
        first: ApplyResult | None = None
        errors: list[BaseException] = []
        try:
            first = self._apply_lane(0, lanes[0])
        except Exception as exc:
            errors.append(exc)
        # Every lane ends before the batch does, whatever the first one's outcome: the
        # batch's offsets are committed (or it is delivered again) only after all.
        errors += [e for e in (f.exception() for f in others) if e is not None]
        if errors:
            # MySQL unavailable pauses the loop; anything else (a schema mismatch, a bug)
            # must not hide behind it, whichever lane it happened in.
            errors.sort(key=lambda e: isinstance(e, ServiceError))
            for other in errors[1:]:
                log.warning("another apply lane failed too", error=repr(other))
            raise errors[0]
        assert first is not None
        for future in others:
            first.merge(future.result())
        return first

    def close(self) -> None:
        """End the lanes' threads and return their connections (after the last `apply`)."""
        if self._lanes is not None:
            self._lanes.shutdown(wait=True)
            self._lanes = None
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _apply_lane(self, lane: int, changes: Sequence[Change]) -> ApplyResult:
        connection = self._connections.get(lane)
        if connection is None:
            connection = self._connections[lane] = LaneConnection(self.engine)
        result = ApplyResult()
        for part in chunks(list(changes), self.rows_per_transaction):
            result.merge(self._isolating(connection, part))
        return result

    def _isolating(self, connection: LaneConnection, changes: Sequence[Change]) -> ApplyResult:
        try:
            return self._transaction(connection, changes)
        except _RowRejected as exc:
            if len(changes) == 1:
                return ApplyResult(
                    dead=[DeadLetter.of(changes[0].source, _refused(changes[0], exc))]
                )
            middle = len(changes) // 2
            result = self._isolating(connection, changes[:middle])
            result.merge(self._isolating(connection, changes[middle:]))
            return result

    def _transaction(self, connection: LaneConnection, changes: Sequence[Change]) -> ApplyResult:
        def attempt() -> ApplyResult:
            result = ApplyResult()
            with connection.transaction() as conn:
                by_table: dict[str, list[Change]] = defaultdict(list)
                for change in changes:
                    by_table[change.table].append(change)
                for name, table_changes in by_table.items():
                    self._apply_table(conn, self.mapping.table(name), table_changes, result)
            return result

        try:
            return with_retries(attempt)
        except MYSQL_ERRORS as exc:
            if is_row_rejection(exc):
                errno = mysql_errno(exc)
                raise _RowRejected(
                    f"MySQL error {errno}: {mysql_message(exc)}", errno=errno
                ) from None
            raise _service_error(exc) from None
        except RowTooLarge as exc:
            raise _RowRejected(str(exc)) from None
        except UnicodeEncodeError as exc:  # a lone surrogate, from a \ud800 escape in JSON
            raise _RowRejected(_not_unicode(exc)) from None
        except sa.exc.SQLAlchemyError as exc:
            if isinstance(getattr(exc, "orig", None), UnicodeEncodeError):
                raise _RowRejected(_not_unicode(exc.orig)) from None  # type: ignore[attr-defined]
            raise ServiceError(f"MySQL target unavailable: {exc}") from None

    def _apply_table(
        self, conn: Connection, table: TableMapping, changes: list[Change], result: ApplyResult
    ) -> None:
        versioned = bool(table.version_columns)
        states = row_versions.read_states(
            conn,
            table.name,
            {c.identity[1] for c in changes},
            probe=table.name not in self._tables_with_states,
        )
        plan = plan_table(
            changes, {(table.name, k): s for k, s in states.items()}, versioned=versioned
        )
        self._run_deletes(conn, table, plan.deletes, versioned=versioned)
        for rejected, reason in find_unique_collisions(conn, table, plan.upserts):
            result.collisions.append((rejected, reason))
            plan.upserts.remove(rejected)
            plan.state_writes.pop(rejected.identity, None)
            plan.state_clears.discard(rejected.identity)
        self._run_upserts(conn, table, plan.upserts)
        self._write_side_table(conn, table, plan)
        if states or plan.state_writes:
            # Only ever a positive answer is cached: at worst (a rollback, a prune) the
            # per-key lookups run when no state exists, which is merely slower.
            self._tables_with_states.add(table.name)
        result.applied[(table.name, "delete")] += len(plan.deletes)
        result.applied[(table.name, "upsert")] += len(plan.upserts)
        result.stale[table.name] += len(plan.stale)

    def _run_deletes(
        self, conn: Connection, table: TableMapping, deletes: list[Change], *, versioned: bool
    ) -> None:
        # Deletes are rare next to upserts: one statement each keeps the guard simple.
        for change in deletes:
            guarded = versioned and change.version_values is not None
            conn.exec_driver_sql(
                self._deletes[table.name, guarded],
                sql.delete_params(table, change.key, change.version_values),
            )

    def _run_upserts(self, conn: Connection, table: TableMapping, upserts: list[Change]) -> None:
        versioned = bool(table.version_columns)
        for strict in (False, True):
            part = [c for c in upserts if (versioned and c.backfill) == strict]
            if part:
                self._run_upsert_statement(conn, table, part, strict=strict)

    def _run_upsert_statement(
        self, conn: Connection, table: TableMapping, upserts: list[Change], *, strict: bool
    ) -> None:
        statement = self._upserts[table.name, strict]
        values = self._row_values[table.name]
        render = self._renderers[table.name]
        rows = [values(c.row) for c in upserts if c.row is not None]
        # The DBAPI cursor of this transaction's connection, directly: SQLAlchemy adds
        # per-row parameter handling to executemany that costs ~10% of the apply time
        # (measured with ops/bench/bench_apply.py), and PyMySQL's rewrite needs none of it.
        cursor = cast(Cursor, conn.connection.dbapi_connection.cursor())  # type: ignore[union-attr]
        try:
            for part in chunks(rows, self.rows_per_statement):
                execute_upsert(cursor, statement, part, render, max_packet=self._max_packet)
        finally:
            cursor.close()

    def _write_side_table(self, conn: Connection, table: TableMapping, plan: TablePlan) -> None:
        row_versions.write_states(
            conn, table.name, {ident[1]: state for ident, state in plan.state_writes.items()}
        )
        if plan.state_clears:
            row_versions.clear_states(conn, table.name, [ident[1] for ident in plan.state_clears])


def _one_lane_only(table: TableMapping) -> bool:
    """Must `table` stay whole in one apply lane (`consumers.lanes`)?

    - A secondary UNIQUE index: its collision check assumes one writer per value.
    - A decimal or real key column: its identity is the converted value's text, and 1.5 and
      1.50 (or 0.0 and -0.0) are two identities but one row to MySQL; two lanes could write
      that row at once.
    """
    if any(i.unique and set(i.columns) != set(table.primary_key) for i in table.indexes):
        return True
    return any(table.columns[c].type.kind in ("decimal", "real") for c in table.primary_key)


def _not_unicode(exc: UnicodeEncodeError) -> str:
    bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
    return f"a value is not valid Unicode ({bad}: {exc.reason}); utf8mb4 cannot store it"


def _service_error(exc: Exception) -> Exception:
    errno, message = mysql_errno(exc), mysql_message(exc)
    if errno in (1146, 1054):
        return SchemaError(
            f"target schema does not match the mapping (MySQL {errno}: {message}); "
            "run `d1cdc schema apply`"
        )
    return ServiceError(f"MySQL target refused the batch (MySQL {errno}: {message})")
