"""The binlog reverse source (issue 16, optional): MySQL's row binlog → reverse events.

`backfill --reverse --binlog` reads the target's row-based binary log with the maintained
`mysql-replication` library (`pymysqlreplication.BinLogStreamReader`, a replica client on
PyMySQL) instead of polling by version columns. It sees every committed row change —
including writes that do not bump `updatedAt` and hard deletes, which the poller cannot see
or must diff for — in commit order, and emits them as the poller does: `origin: "reverse"`
events in the source representation (`producers.reverse_events`) on `{prefix}.reverse.{table}`.

For self-hosted MySQL/MariaDB only: PlanetScale (Vitess) does not serve its binlog to
replication clients (it offers VStream); there the polling source is the one to use. The
server needs `log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`
(column names, signedness and charsets travel in the table map only then) and a user with
REPLICATION SLAVE and REPLICATION CLIENT; `check_binlog` says which one is missing.

At-least-once: a position (binlog file, offset after a transaction's commit event — never
inside a transaction, where a resume would lack the table map — and the last `ts_ms` given)
is saved in `_d1cdc_binlog_position` only once Kafka acknowledged every event before it, so a
`kill -9` resumes at or before the last acknowledged event. It starts at the position
`d1cdc cutover start` saved (the binlog's end with the writes frozen, just before the
switch), so it may start after the switch without missing a write; without one (no cut-over
marked) its first start begins at the binlog's current end and saves it at once. `ts_ms`
is the event's binlog time, raised to one more than the previous event's when not later, so
one key's events keep their order for the version rules even within a second, and a replay
from a saved position reproduces the same `ts_ms` values.

Rows of tables outside the mapping are skipped; DDL is logged and ignored (the mapping and
D1 are changed by a person); an UPDATE of a primary key becomes a delete of the old key
followed by an upsert of the new one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pymysql
import sqlalchemy as sa
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import HeartbeatLogEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import Connection, Engine, make_url

from producers.emitter import ChangeEmitter
from producers.reverse_events import REVERSE_ORIGIN, reverse_delete, reverse_upsert
from producers.reverse_poller import unconvertible
from worker.config import Settings
from worker.db import target_engine, tls_context
from worker.errors import (
    ConfigError,
    ConversionError,
    SchemaError,
    ServiceError,
    UnshippableError,
)
from worker.logs import get_logger
from worker.schema.mapping import TableMapping
from worker.schema.unconvert import unconvert_row
from worker.topics import ensure_table_topics, reverse_topic_for

_log = get_logger("d1cdc.reverse_binlog")
SOURCE_NAME = "reverse-binlog"
HEARTBEAT_S = 0.5  # the server's heartbeat when idle: how soon a stop request is seen
SAVE_EVERY_S = 1.0
IDLE_SAVE_S = 60.0  # other tables' traffic only: still move the position on this often
_ER_ACCESS_DENIED = (1227, 1045)  # "need REPLICATION … privilege", access denied
_ER_MASTER_FATAL = 1236  # the saved binlog file is gone (purged) or the position is invalid
_ER_FATAL = (*_ER_ACCESS_DENIED, _ER_MASTER_FATAL)
MAX_BACKOFF_S = 30.0

_metadata = sa.MetaData()
positions_table = sa.Table(
    "_d1cdc_binlog_position",
    _metadata,
    sa.Column("source", sa.String(64, collation="utf8mb4_bin"), primary_key=True),
    sa.Column("log_file", sa.String(255), nullable=False),
    sa.Column("log_pos", sa.BigInteger, nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at", DATETIME(fsp=3), nullable=False),
    mysql_charset="utf8mb4",
)


@dataclass(frozen=True)
class BinlogPosition:
    log_file: str
    log_pos: int
    ts_ms: int = 0  # the last event's ts_ms before this position


class BinlogPositionStore:
    """The source's one row in the target: where the next run starts reading."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine, checkfirst=True)

    def load(self) -> BinlogPosition | None:
        query = sa.select(positions_table).where(positions_table.c.source == SOURCE_NAME)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else BinlogPosition(row.log_file, row.log_pos, row.ts_ms)

    def save(self, position: BinlogPosition) -> None:
        statement = mysql_insert(positions_table).values(
            source=SOURCE_NAME,
            log_file=position.log_file,
            log_pos=position.log_pos,
            ts_ms=position.ts_ms,
            updated_at=datetime.now(UTC).replace(tzinfo=None),
        )
        new = statement.inserted
        statement = statement.on_duplicate_key_update(
            log_file=new.log_file, log_pos=new.log_pos, ts_ms=new.ts_ms, updated_at=new.updated_at
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def clear(self) -> int:
        """Forget the position (`cutover rollback`): a later cut-over starts afresh."""
        with self.engine.begin() as conn:
            result = conn.execute(sa.delete(positions_table))
        return int(result.rowcount)


def binlog_position_saved(engine: Engine) -> BinlogPosition | None:
    """The binlog source's saved position, without creating its table: is it in use?"""
    if not sa.inspect(engine).has_table(positions_table.name):
        return None
    return BinlogPositionStore(engine).load()


def mark_binlog_start(engine: Engine) -> BinlogPosition | None:
    """`cutover start`: where a binlog source starts, taken with the writes frozen just
    before the switch, so it ships every MySQL write after it even when it starts later.
    None when the server cannot serve a row binlog (PlanetScale): the poller is the
    source there, and nothing is recorded."""
    try:
        with engine.connect() as conn:
            end = check_binlog(conn)
    except (ConfigError, sa.exc.DBAPIError):
        return None
    BinlogPositionStore(engine).save(end)
    return end


_REQUIRED = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}


def binlog_problem(variables: Mapping[str, str]) -> str | None:
    """What keeps the server's binlog from serving this source (None: nothing), from its
    `SHOW GLOBAL VARIABLES`. A variable the server does not have is not required of it."""
    if variables.get("log_bin", "OFF").upper() not in ("ON", "1"):
        return (
            "the MySQL server writes no binary log (log_bin=OFF): start it with log_bin, "
            "binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL and a server_id "
            "(PlanetScale serves no binlog: use `backfill --reverse` without --binlog)"
        )
    for name, wanted in _REQUIRED.items():
        value = variables.get(name)
        if value is not None and value.upper() != wanted:
            return f"the binlog source needs {name}={wanted}; the server has {name}={value}"
    if "PARTIAL_JSON" in variables.get("binlog_row_value_options", "").upper():
        return "the binlog source needs full JSON images: set binlog_row_value_options=''"
    return None


def check_binlog(conn: Connection) -> BinlogPosition:
    """The binlog's current end; `ConfigError` (one line, naming the setting or privilege)
    when the server or the user cannot serve a row binlog."""
    names = ("log_bin", *_REQUIRED, "binlog_row_value_options")
    rows = conn.exec_driver_sql(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ",".join(["%s"] * len(names)) + ")",
        names,
    ).all()
    if problem := binlog_problem({str(r[0]).lower(): str(r[1]) for r in rows}):
        raise ConfigError(problem)
    try:
        status = _binary_log_status(conn)
    except sa.exc.DBAPIError as exc:
        if _error_code(exc.orig) in _ER_ACCESS_DENIED:
            raise ConfigError(_privilege_message("REPLICATION CLIENT")) from None
        raise
    if status is None:
        raise ConfigError("the MySQL server reports no binary log status (log_bin=OFF?)")
    return BinlogPosition(str(status[0]), int(status[1]))


def _binary_log_status(conn: Connection) -> Any:
    try:  # MySQL 8.4 renamed the statement; MariaDB and older MySQL know only the old one
        return conn.exec_driver_sql("SHOW BINARY LOG STATUS").first()
    except sa.exc.ProgrammingError:
        return conn.exec_driver_sql("SHOW MASTER STATUS").first()


def _privilege_message(privilege: str) -> str:
    return (
        f"the target's user lacks the {privilege} privilege the binlog source needs: "
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO that user"
    )


def _error_code(exc: BaseException | None) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def connection_settings(settings: Settings) -> dict[str, Any]:
    """PyMySQL arguments for the target URL's server, with the target engine's TLS rules."""
    url = make_url(settings.target_url.get_secret_value())
    tls = tls_context(url, allow_plaintext=settings.target_allow_plaintext)
    args: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "",
        "password": url.password or "",
        "charset": "utf8mb4",
        "connect_timeout": 10,
        "read_timeout": 30 * HEARTBEAT_S,  # a silent server is a dead connection
    }
    args.update({"ssl": tls} if tls is not None else {"ssl_disabled": True})
    return args


def _json_text(value: Any) -> str:
    """MySQL 8 sends JSON columns in its binary form, which the library parses into Python
    objects (bytes for keys and strings); PyMySQL, what `unconvert` expects, returns text.
    A JSON `null` and SQL NULL both arrive as None: read as SQL NULL."""

    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode("utf-8")
        if isinstance(v, dict):
            return {plain(k): plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        return v.isoformat() if isinstance(v, datetime) else v

    return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False)


def mysql_row(
    table: TableMapping, values: Mapping[str, Any], binary_json: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A binlog row image as PyMySQL would have read the row. mysql-replication already
    returns the driver's types (DATETIME(3) → datetime, BIGINT and BOOLEAN/TINYINT(1) → int,
    unsigned included, DECIMAL → Decimal, BLOB → bytes, TEXT/VARCHAR → str, and MariaDB's
    JSON, a LONGTEXT, → str); only the columns of MySQL 8's binary JSON type differ."""
    missing = [name for name in table.columns if name not in values]
    if missing:  # names come from the table map only with binlog_row_metadata=FULL
        raise SchemaError(
            f"table {table.name!r}: the binlog row lacks column(s) {missing} "
            "(binlog_row_metadata=FULL? the MySQL table differs from the mapping?)"
        )
    row = dict(values)
    for name in binary_json:
        if row.get(name) is not None:
            row[name] = _json_text(row[name])
    return row


def _binary_json_columns(event: Any) -> frozenset[str]:
    return frozenset(c.name for c in event.columns if c.type == FIELD_TYPE.JSON)


class BinlogReverseSource:
    """Follow the binlog from the saved position; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        tables: list[TableMapping],
        emitter: ChangeEmitter,
        engine: Engine,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        self.connection = connection_settings(settings)
        self.database = make_url(settings.target_url.get_secret_value()).database or ""
        self.server_id = settings.reverse_binlog_server_id
        self.tables = {t.name: t for t in tables}
        self.emitter = emitter
        self.engine = engine
        self.stop = stop or threading.Event()
        self.store = BinlogPositionStore(engine)
        self.emitted = 0
        self._pending: deque[tuple[int, BinlogPosition]] = deque()  # (last sequence, position)
        self._acked: BinlogPosition | None = None  # the newest one Kafka acknowledged
        self._saved: BinlogPosition | None = None
        self._saved_at = 0.0
        self._emitted_at_save = 0

    def run(self, *, follow: bool = True) -> int:
        """Emit every mapped row change after the saved position; until `stop` when
        following, else up to the binlog's end. Returns the events emitted.

        While following, a lost connection (MySQL restarting) is ridden out: reading starts
        again at the last saved position, so what was emitted but not yet saved is emitted
        again (the apply path is idempotent). A Kafka delivery failure (`ServiceError`) ends
        the run, nothing after it saved: the emitter cannot acknowledge past a lost event, so
        the next run (a supervisor's restart) resumes before it."""
        with self.engine.connect() as conn:
            end = check_binlog(conn)
        start = self.store.load()
        if start is None:
            _log.info(
                "binlog source: first start, at the binlog's end",
                file=end.log_file,
                pos=end.log_pos,
            )
            start = end
            self.store.save(start)  # before any event: a crash must not move the start on
        self._saved = self._acked = start
        failures = 0
        while True:
            try:
                self._read(self._saved, follow=follow)
                break
            except (pymysql.err.OperationalError, sa.exc.OperationalError) as exc:
                failures += 1
                if not follow or self.stop.is_set() or _error_code(exc) in _ER_FATAL:
                    raise _stream_error(exc, self._saved) from None
                self._pending.clear()
                self._acked = self._saved
                delay = min(MAX_BACKOFF_S, 0.5 * 2 ** min(failures, 8))
                _log.warning(
                    "binlog source: stream failed; resuming at the saved position",
                    error=str(exc),
                    retry_in_s=delay,
                )
                self.stop.wait(delay)
        self.emitter.flush()
        self._advance()
        self._save(force=True)
        return self.emitted

    def _read(self, start: BinlogPosition, *, follow: bool) -> None:
        stream = BinLogStreamReader(
            connection_settings=dict(self.connection),
            server_id=self.server_id,
            log_file=start.log_file,
            log_pos=start.log_pos,
            resume_stream=True,
            blocking=follow,
            only_events=[
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
                XidEvent,
                QueryEvent,
                HeartbeatLogEvent,
            ],
            only_schemas=[self.database],
            only_tables=list(self.tables),
            slave_heartbeat=HEARTBEAT_S,
            enable_logging=False,
        )
        ts_ms = start.ts_ms
        try:
            while not self.stop.is_set():
                event = stream.fetchone()
                if event is None:  # not following: the binlog's end
                    return
                if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                    ts_ms = self._emit_rows(event, ts_ms)
                elif isinstance(event, XidEvent | QueryEvent):
                    if isinstance(event, QueryEvent) and not _ends_transaction(event):
                        continue
                    # After a commit (or DDL): a transaction boundary, where a resume may start.
                    self._boundary(BinlogPosition(stream.log_file, stream.log_pos, ts_ms))
                self.emitter.poll(0)
                self._advance()
                self._save()
        finally:
            stream.close()

    def _emit_rows(self, event: Any, ts_ms: int) -> int:
        table = self.tables.get(event.table)
        if table is None:
            return ts_ms  # only_tables filters by name alone; never a table outside the mapping
        binary_json = _binary_json_columns(event)
        for before_values, after_values in _images(event):
            before = None if before_values is None else mysql_row(table, before_values, binary_json)
            after = None if after_values is None else mysql_row(table, after_values, binary_json)
            if before is not None and (after is None or _key(table, before) != _key(table, after)):
                # A delete, or an UPDATE of the primary key: the old key's row is gone.
                ts_ms = max(int(event.timestamp) * 1000, ts_ms + 1)
                with self._one_event(table, before):
                    key = reverse_delete(table, before).key
                    row = unconvert_row(table, before)  # the before-image: a stale delete loses
                    self.emitter.delete(
                        table.name, key, before=row, origin=REVERSE_ORIGIN, ts_ms=ts_ms
                    )
            if after is not None:
                ts_ms = max(int(event.timestamp) * 1000, ts_ms + 1)
                with self._one_event(table, after):
                    self.emitter.emit(replace(reverse_upsert(table, after), ts_ms=ts_ms))
        return ts_ms

    @contextmanager
    def _one_event(self, table: TableMapping, row: dict[str, Any]) -> Iterator[None]:
        """One row must not stop every later one: a row D1 cannot hold (a BOOLEAN of 2 from
        raw SQL) or an event too large for Kafka is dead-lettered, as the poller does."""
        try:
            try:
                yield
            except ConversionError as exc:
                raise unconvertible(self.emitter.topic(table.name), table, row, exc) from None
        except UnshippableError as exc:
            self.emitter.dead_letter(exc)
        self.emitted += 1

    def _boundary(self, position: BinlogPosition) -> None:
        sequence = self.emitter.last_sequence
        if self._pending and self._pending[-1][0] == sequence:
            self._pending[-1] = (sequence, position)  # nothing emitted since: keep the newest
        else:
            self._pending.append((sequence, position))

    def _advance(self) -> None:
        while self._pending and self._pending[0][0] <= self.emitter.acked_through:
            self._acked = self._pending.popleft()[1]

    def _save(self, *, force: bool = False) -> None:
        """Save the newest acknowledged position. Each save is itself a binlog transaction,
        so with no mapped change since the last one, positions move on every IDLE_SAVE_S."""
        if self._acked is None or self._acked == self._saved:
            return
        busy = self.emitted != self._emitted_at_save
        since = time.monotonic() - self._saved_at
        if force or since >= (SAVE_EVERY_S if busy else IDLE_SAVE_S):
            self.store.save(self._acked)
            self._saved, self._saved_at, self._emitted_at_save = (
                self._acked,
                time.monotonic(),
                self.emitted,
            )


def _images(event: Any) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """(before, after) of each row of a rows event; None where the change has no such side."""
    for image in event.rows:
        if isinstance(event, WriteRowsEvent):
            yield None, image["values"]
        elif isinstance(event, DeleteRowsEvent):
            yield image["values"], None
        else:
            yield image["before_values"], image["after_values"]


def _key(table: TableMapping, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in table.primary_key)


def _ends_transaction(event: Any) -> bool:
    """A COMMIT (non-transactional tables) or a statement (DDL, or DML a session logged as a
    statement: not replicated, said loudly) ends a transaction; a BEGIN does not."""
    query = str(event.query).strip()
    if query.upper() == "BEGIN":
        return False
    if query.upper() not in ("COMMIT", "XA COMMIT"):
        _warn_statement(event)
    return True


def _warn_statement(event: Any) -> None:
    query = str(event.query)
    if "_d1cdc_" in query:  # this tool's own bookkeeping tables
        return
    _log.warning(
        "binlog statement ignored (DDL, or DML logged as a statement): change D1 and the "
        "mapping yourself if it alters a mapped table",
        schema=str(event.schema, "utf-8", "replace")
        if isinstance(event.schema, bytes)
        else str(event.schema),
        statement=query[:200],
    )


def _stream_error(exc: Exception, start: BinlogPosition) -> Exception:
    code = _error_code(exc)
    if code in _ER_ACCESS_DENIED:
        return ConfigError(_privilege_message("REPLICATION SLAVE"))
    if code == _ER_MASTER_FATAL:
        return ConfigError(
            f"the server cannot stream from the saved binlog position {start.log_file}:"
            f"{start.log_pos} ({exc.args[-1]}): catch up with `backfill --reverse` (polling), "
            "then delete the row of _d1cdc_binlog_position to start at the binlog's end"
        )
    return ServiceError(f"the binlog stream from {start.log_file}:{start.log_pos} failed: {exc}")


def run_reverse_binlog(
    settings: Settings,
    tables: list[TableMapping],
    *,
    follow: bool = True,
    stop: threading.Event | None = None,
) -> int:
    """Programmatic `backfill --reverse --binlog`; returns the events emitted."""
    ensure_table_topics(settings, [t.name for t in tables], topic_of=reverse_topic_for)
    engine = target_engine(settings, pool_size=2)
    emitter = ChangeEmitter.from_settings(
        settings, origin=REVERSE_ORIGIN, topic_of=reverse_topic_for
    )
    try:
        return BinlogReverseSource(settings, tables, emitter, engine, stop=stop).run(follow=follow)
    finally:
        emitter.close()
        engine.dispose()
