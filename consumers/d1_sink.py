"""D1Sink: apply reverse changes (MySQL → D1 after cut-over, issue 16) to D1 or its SQLite file.

The twin of `MySQLSink` with the same `apply(changes) -> ApplyResult`, so the consume loop
and `BackgroundApplier` drive either. Per apply: read the side-table states of the batch's
keys, plan with `consumers.plan` (the MySQL sink's tie rules and tombstones), turn the
converted rows back into the source representation (`worker.schema.unconvert`), build the
statements (`consumers.d1_statements`) and send them as `batch()` calls, D1's only
transaction, each framed by the no-echo marker so the capture triggers log nothing.

Limits (https://developers.cloudflare.com/d1/platform/limits/): ≤ 100 bound parameters and
≤ 100 KB of SQL per statement, 30 s per query, 1,200 API requests per 5 minutes. Every
statement binds ≤ 100 parameters (d1_statements) and its SQL is a template of ≤ 100
placeholders, far below 100 KB (checked anyway). A batch holds at most `MAX_STATEMENTS`
statements and `MAX_BATCH_BYTES` of SQL and values: 50 is the smallest number of queries
D1 lets one unit of work run (a Worker invocation on the free plan), about 4,800 bound
values, milliseconds of SQLite work, far from the 30 s limit; 1 MB keeps one request, and
its retry, small (a single larger row, D1 allows 2 MB, travels alone). A batch that does
not fit is split in halves; one that SQLite refuses because of a row (constraint, NOT
NULL…) is retried by prefixes until each culprit is alone (`D1Sink._isolate`: about n
requests when all n rows are refused, not halving's 2n - 1): it is dead-lettered with
SQLite's reason, the rest applies. Each part is its own batch, its rows and side-table states
together; a part already committed when a later one fails is harmless, its events being
delivered again (P1). A D1/SQLite outage is a `ServiceError`: the loop pauses and retries.
So is a failing marker statement (a leftover marker row makes every insert of it a UNIQUE
violation, which is no row's fault): the sink's start, run again on the next attempt,
deletes a leftover marker row with a warning.

Foreign keys: D1 enforces them, and reverse topics are per table, so a batch may hold a
child before its parent. Every batch starts with `PRAGMA defer_foreign_keys = on`
(`d1_statements.framed`): they are checked at its commit, and order within a batch does not
matter. A refused batch is narrowed in an order where parents' upserts precede their
children's and children's deletes precede their parents' (the mapping's dependency
levels), so a prefix never parts a child from a parent it needs. What remains: a child in
an earlier batch than its parent is refused ("FOREIGN KEY constraint failed") and
dead-lettered; `d1cdc dlq replay` applies it once the parent is there.

Side table `_d1cdc_reverse_states`: what `_d1cdc_row_versions` is for MySQL, one row per
(table, canonical key) — tombstones, and the last `ts_ms` of rows of tables without version
columns. Versions are stored as hex text: the HTTP API's JSON parameters carry no bytes,
and hex sorts like the bytes. Keys are looked up with ONE JSON parameter (`json_each`), so a
batch costs one read per table, not one per 99 keys. Never pruned: the reverse pipeline
runs from cut-over until cleanup only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from consumers.change import Change, DeadLetter, StoredState
from consumers.d1_statements import (
    MARKER_DDL,
    MARKER_TABLE,
    Statement,
    delete_statements,
    framed,
    guarded_delete_statement,
    upsert_statements,
)
from consumers.plan import Ident, TablePlan, plan_table
from consumers.sink import ApplyResult
from worker.chunking import chunks
from worker.errors import ConversionError, RowRefusedError, SchemaError, ServiceError
from worker.logs import get_logger
from worker.schema.mapping import Mapping, TableMapping
from worker.schema.unconvert import unconvert_row, unconvert_value
from worker.sources.base import MAX_PARAMS, quote_sqlite

_log = get_logger("d1cdc.d1_sink")
STATES_TABLE = "_d1cdc_reverse_states"
STATES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {quote_sqlite(STATES_TABLE)} ("
    '"table_name" TEXT NOT NULL, "pk" TEXT NOT NULL, "op" TEXT NOT NULL, "version" TEXT, '
    '"ts_ms" INTEGER NOT NULL, PRIMARY KEY ("table_name", "pk"))'
)
MAX_STATEMENTS = 50  # per batch, the two marker statements included
MAX_BATCH_BYTES = 1_000_000  # SQL text and values of one batch
MAX_SQL_BYTES = 100_000  # D1: per statement
KEYS_PER_LOOKUP = 1000  # canonical keys in one JSON parameter (D1 strings may hold 2 MB)
_STATE_COLUMNS = ("table_name", "pk", "op", "version", "ts_ms")
_READ_STATES = (
    f"SELECT pk, op, version, ts_ms FROM {quote_sqlite(STATES_TABLE)} "
    "WHERE table_name = ? AND pk IN (SELECT value FROM json_each(?))"
)
# SQLite's messages (and D1's, which add the result code) for a row the database refuses;
# anything else from a write is the database's problem, not the row's.
_ROW_REFUSALS = (
    "constraint failed",
    "sqlite_constraint",
    "datatype mismatch",
    "sqlite_mismatch",
    "string or blob too big",
    "sqlite_toobig",
)
_SCHEMA_MISMATCHES = ("no such table", "no such column", "has no column named")


class BatchWriter(Protocol):
    """What the sink needs of a source: reads, and `batch()`, one transaction
    (`SqliteSource`, `D1HttpSource`)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]: ...


class _RowRejected(Exception):
    """One row of the batch cannot be stored; the message says why."""


class D1Sink:
    def __init__(
        self,
        writer: BatchWriter,
        mapping: Mapping,
        *,
        max_statements: int = MAX_STATEMENTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        if max_statements < 3:
            raise ValueError("a batch needs room for the marker's two statements and one more")
        self.writer = writer
        self.mapping = mapping
        self.max_statements = max_statements
        self.max_batch_bytes = max_batch_bytes
        self._ready = False

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Apply coalesced `changes`; returns counts and the dead letters of refused rows."""
        if not self._ready:
            self._start()
        if not changes:
            return ApplyResult()
        return self._apply_part(list(changes), self._read_states(changes))

    def _start(self) -> None:
        """Create the marker and side tables, and delete a leftover marker row: while one
        exists the capture triggers log no app write, and every marker insert fails. A
        batch is atomic, so only a manual insert leaves one."""
        changed = self.writer.batch(
            [
                Statement(MARKER_DDL, ()),
                Statement(STATES_DDL, ()),
                Statement(f'DELETE FROM "{MARKER_TABLE}"', ()),
            ]
        )
        if changed[2] > 0:
            _log.warning(
                f"deleted a leftover row of {MARKER_TABLE}; app writes made while it existed "
                "were not captured: check the forward direction with d1cdc verify",
                table=MARKER_TABLE,
            )
        self._ready = True

    # -- one part: one batch ---------------------------------------------------------------
    def _apply_part(self, changes: list[Change], known: dict[Ident, StoredState]) -> ApplyResult:
        """Write `changes` as one batch, or in halves when they do not fit one; a batch D1
        refuses because of a row is narrowed down to its refused rows (`_isolate`)."""
        try:
            return self._attempt(changes, known)
        except _RowRejected as exc:
            return self._isolate(changes, known, exc)

    def _attempt(self, changes: list[Change], known: dict[Ident, StoredState]) -> ApplyResult:
        """Plan and write `changes` as one batch (halves if too big), or raise `_RowRejected`;
        `known` (the side table as committed so far) is updated after each committed batch."""
        plans = self._plan(changes, known)
        statements = [s for name, plan in plans for s in self._statements(name, plan)]
        if len(changes) > 1 and not self._fits(statements):
            return self._halves(changes, known)
        self._write(statements)
        result = ApplyResult()
        for name, plan in plans:
            known.update(plan.state_writes)
            for ident in plan.state_clears:
                known.pop(ident, None)
            result.applied[(name, "delete")] += len(plan.deletes)
            result.applied[(name, "upsert")] += len(plan.upserts)
            result.stale[name] += len(plan.stale)
        return result

    def _halves(self, changes: list[Change], known: dict[Ident, StoredState]) -> ApplyResult:
        middle = len(changes) // 2
        result = self._apply_part(changes[:middle], known)
        result.merge(self._apply_part(changes[middle:], known))
        return result

    def _isolate(
        self, changes: list[Change], known: dict[Ident, StoredState], refusal: _RowRejected
    ) -> ApplyResult:
        """Apply what D1 accepts of `changes`, refused together with `refusal`, and
        dead-letter each row it refuses.

        By prefixes: the first `suspect` pending rows are known to hold a refused row (the
        last refused prefix) and are narrowed by trying their first half; with none known,
        prefixes of 1, 2, 4… rows are tried. A row is dead-lettered only once refused alone,
        or when the rest of a refused prefix applied. Splitting in halves costs 2n - 1
        requests when every row is refused (500 rows: 999 of D1's 1,200 per 5 minutes);
        this costs n + log2 n then, n being the least any scheme spends to show each of n
        rows refused on its own, and as little as halving when they are few (one in 500:
        17 requests, both; two: 34, halving 35)."""
        result = ApplyResult()
        pending = sorted(changes, key=self._parents_first)
        suspect = len(pending)
        step = 1
        while pending:
            if suspect == 1:
                result.dead.append(_dead_letter(pending.pop(0), refusal))
                suspect, step = 0, 1
                continue
            size = suspect // 2 if suspect else min(step, len(pending))
            try:
                part = self._attempt(pending[:size], known)
            except _RowRejected as exc:
                suspect, refusal = size, exc
                continue
            result.merge(part)
            del pending[:size]
            if suspect:
                # the refused row is in the rest, unless the part was split and refused one
                suspect = 0 if part.dead else suspect - size
            else:
                step *= 2
        return result

    def _parents_first(self, change: Change) -> tuple[int, int]:
        level = self.mapping.table(change.table).level
        return (0, -level) if change.op == "delete" else (1, level)

    def _plan(
        self, changes: list[Change], known: dict[Ident, StoredState]
    ) -> list[tuple[str, TablePlan]]:
        by_table: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            by_table[change.table].append(change)
        plans = []
        for name, part in by_table.items():
            versioned = bool(self.mapping.table(name).version_columns)
            plans.append((name, plan_table(part, known, versioned=versioned)))
        return plans

    def _fits(self, statements: list[Statement]) -> bool:
        for s in statements:
            if len(s.sql.encode("utf-8")) > MAX_SQL_BYTES:
                raise SchemaError(
                    f"a D1 sink statement is longer than D1's {MAX_SQL_BYTES} bytes "
                    f"({s.sql[:60]}…); shorten the mapping's column names"
                )
        if len(statements) + 2 > self.max_statements:
            return False
        size = sum(len(s.sql) + sum(map(_value_bytes, s.params)) for s in statements)
        return size <= self.max_batch_bytes

    def _write(self, statements: list[Statement]) -> None:
        if not statements:
            return  # everything was stale: nothing to send
        try:
            self.writer.batch(framed(statements))
        except ServiceError as exc:
            message = str(exc)
            lowered = message.lower()
            if MARKER_TABLE in lowered:  # e.g. a leftover row: "UNIQUE constraint failed"
                self._ready = False  # the next attempt starts again, deleting it
                raise ServiceError(
                    f"the D1 sink's no-echo marker statement on {MARKER_TABLE} failed "
                    f"({' '.join(message.split())}); the next attempt deletes a leftover "
                    "marker row first"
                ) from None
            if any(marker in lowered for marker in _ROW_REFUSALS):
                raise _RowRejected(message) from None
            if any(marker in lowered for marker in _SCHEMA_MISMATCHES):
                raise SchemaError(
                    f"D1 schema does not match the mapping ({message}); "
                    "apply the app's migrations to D1 first"
                ) from None
            raise

    # -- statements -------------------------------------------------------------------------
    def _statements(self, name: str, plan: TablePlan) -> list[Statement]:
        table = self.mapping.table(name)
        versioned = bool(table.version_columns)
        statements: list[Statement] = []
        unguarded = [c for c in plan.deletes if not versioned or c.version_values is None]
        statements += delete_statements(table, [_source_key(table, c) for c in unguarded])
        for change in plan.deletes:
            if versioned and change.version_values is not None:
                pairs = zip(table.version_columns, change.version_values, strict=True)
                versions = [_unconvert(table, column, value, change) for column, value in pairs]
                statements.append(
                    guarded_delete_statement(table, _source_key(table, change), versions)
                )
        for strict in (False, True):
            rows = [
                _source_row(table, c) for c in plan.upserts if (versioned and c.backfill) == strict
            ]
            if rows:
                statements += upsert_statements(table, rows, strict=strict)
        states = [(ident[1], state) for ident, state in plan.state_writes.items()]
        statements += _write_states(name, states)
        statements += _clear_states(name, [ident[1] for ident in plan.state_clears])
        return statements

    def _read_states(self, changes: Sequence[Change]) -> dict[Ident, StoredState]:
        keys: dict[str, set[str]] = defaultdict(set)
        for change in changes:
            keys[change.table].add(change.identity[1])
        found: dict[Ident, StoredState] = {}
        for name, table_keys in keys.items():
            ordered = sorted(table_keys)
            for chunk in chunks(ordered, KEYS_PER_LOOKUP):
                part = json.dumps(list(chunk))
                for row in self.writer.query(_READ_STATES, (name, part)):
                    version = row["version"]
                    found[(name, str(row["pk"]))] = StoredState(
                        "delete" if row["op"] == "delete" else "upsert",
                        None if version is None else bytes.fromhex(version),
                        int(row["ts_ms"]),
                    )
        return found


def _dead_letter(change: Change, refusal: _RowRejected) -> DeadLetter:
    return DeadLetter.of(
        change.source,
        RowRefusedError(
            f"D1 refused {change.op} of {change.table} key {change.identity[1]}: {refusal} "
            "(fix D1's schema or the row in MySQL, then `d1cdc dlq replay`)"
        ),
    )


def _write_states(table: str, states: list[tuple[str, StoredState]]) -> list[Statement]:
    per_statement = MAX_PARAMS // len(_STATE_COLUMNS)
    one = "(" + ", ".join("?" for _ in _STATE_COLUMNS) + ")"
    statements = []
    for chunk in chunks(states, per_statement):
        sql = (
            f"INSERT INTO {quote_sqlite(STATES_TABLE)} ({', '.join(_STATE_COLUMNS)}) "
            f"VALUES {', '.join(one for _ in chunk)} ON CONFLICT (table_name, pk) DO UPDATE "
            "SET op = excluded.op, version = excluded.version, ts_ms = excluded.ts_ms"
        )
        params = [
            value
            for pk, s in chunk
            for value in (table, pk, s.op, None if s.version is None else s.version.hex(), s.ts_ms)
        ]
        statements.append(Statement(sql, tuple(params)))
    return statements


def _clear_states(table: str, pks: list[str]) -> list[Statement]:
    per_statement = MAX_PARAMS - 1
    statements = []
    for chunk in chunks(pks, per_statement):
        sql = (
            f"DELETE FROM {quote_sqlite(STATES_TABLE)} WHERE table_name = ? "
            f"AND pk IN ({', '.join('?' for _ in chunk)})"
        )
        statements.append(Statement(sql, (table, *chunk)))
    return statements


def _unconvert(table: TableMapping, column: str, value: Any, change: Change) -> Any:
    try:
        return unconvert_value(table, table.columns[column], value, change.key)
    except ConversionError as exc:
        raise _RowRejected(exc.reason) from None


def _source_key(table: TableMapping, change: Change) -> dict[str, Any]:
    return {c: _unconvert(table, c, change.key[c], change) for c in table.primary_key}


def _source_row(table: TableMapping, change: Change) -> dict[str, Any]:
    assert change.row is not None  # upserts always carry their row
    try:
        return unconvert_row(table, change.row)
    except ConversionError as exc:
        raise _RowRejected(exc.reason) from None


def _value_bytes(value: Any) -> int:
    """About what `value` adds to a request (JSON): exact for text, a bound for the rest."""
    if isinstance(value, str):
        return len(value.encode("utf-8")) + 2
    if isinstance(value, bytes):
        return 4 * len(value)
    return 24
