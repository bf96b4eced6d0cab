"""`d1cdc backfill`: emit the source's rows by watermark; `--follow` keeps polling.

`--reverse` (after cut-over, issue 16) runs the same poller the other way: MySQL's changed
rows become `origin: "reverse"` events on `{prefix}.reverse.{table}`, for `consume --into d1`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]
from sqlalchemy.engine import Engine

from consumers.offsets import group_progress, topic_offsets
from producers.backfill import MAX_BACKOFF_S, Backfill, BackfillOptions
from producers.emitter import ChangeEmitter
from producers.reverse_binlog import run_reverse_binlog
from producers.reverse_poller import ReversePoller, reverse_watermarks
from producers.watermarks import WatermarkStore
from worker.cli.context import settings_from, table_names
from worker.config import Settings
from worker.db import ping, target_engine
from worker.errors import ConfigError, ServiceError
from worker.kafka import admin_client
from worker.logs import get_logger
from worker.progress_bars import TableProgress, progress_enabled
from worker.schema.mapping import Mapping, TableMapping, load_mapping
from worker.signals import stop_on_signals
from worker.sources import open_source
from worker.topics import ensure_table_topics, reverse_topic_for, topic_for

_log = get_logger("d1cdc.backfill")


def select_tables(mapping: Mapping, tables: list[str] | None) -> list[TableMapping]:
    """The mapping's tables named by `--tables` (repeatable, comma-separated); default all."""
    names = table_names(tables)
    if not names:
        return mapping.in_level_order()
    return sorted((mapping.table(n) for n in names), key=lambda t: (t.level, t.name))


def run_backfill(
    settings: Settings,
    mapping: Mapping,
    tables: list[TableMapping],
    options: BackfillOptions,
    *,
    follow: bool = False,
    interval_s: float = 10.0,
    stop: threading.Event | None = None,
    reverse: bool = False,
) -> int:
    """Programmatic `d1cdc backfill` (`reverse`: MySQL → D1); returns the rows emitted."""
    topic_of = reverse_topic_for if reverse else topic_for
    ensure_table_topics(settings, [t.name for t in tables], topic_of=topic_of)
    stop = stop or threading.Event()
    engine = target_engine(settings, pool_size=2)
    _wait_for_target(engine, stop, patient=follow)
    guard = _cut_over_guard(engine, reverse=reverse)
    try:
        guard()
    except ConfigError:
        engine.dispose()
        raise
    source = open_source(settings)
    origin = "reverse" if reverse else "backfill"
    emitter = ChangeEmitter.from_settings(settings, mapping, origin=origin, topic_of=topic_of)
    try:
        with TableProgress(progress_enabled(settings.log_format)) as progress:
            poller: Backfill
            if reverse:
                # The reverse delete diff must wait for both directions: a D1 write the
                # forward pipeline has not applied yet looks like a row MySQL deleted.
                applied = _applied_by(
                    settings,
                    (settings.reverse_group_id, reverse_topic_for),
                    (settings.group_id, topic_for),
                )
                poller = ReversePoller(
                    engine, source, emitter, options, progress=progress, stop=stop,
                    applied=applied, before_pass=guard,
                )  # fmt: skip
            else:
                poller = Backfill(
                    source,
                    emitter,
                    WatermarkStore(engine),
                    engine,
                    options,
                    progress=progress,
                    stop=stop,
                    applied=_applied_by(settings, (settings.group_id, topic_for)),
                    before_pass=guard,
                )
            if follow:
                poller.follow(tables, interval_s)
                return 0
            return sum(r.emitted for r in poller.run_once(tables))
    finally:
        emitter.close()
        source.close()
        engine.dispose()


TopicOf = Callable[[str, str], str]


def _cut_over_guard(engine: Engine, *, reverse: bool) -> Callable[[], None]:
    """What each pass checks first, so a poller left running stops at the right moment.

    Forward: once `cutover start` saved reverse watermarks the app writes to MySQL, and the
    forward delete diff would take every row written there since for a row deleted in D1.
    Reverse: without them (never started, or `cutover rollback` cleared them) the app
    writes to D1 again, and the reverse diff would take every new D1 row for one deleted
    in MySQL."""
    store = reverse_watermarks(engine)

    def guard() -> None:
        started = bool(store.all())
        if not reverse and started:
            raise ConfigError(
                "the cut-over has started (reverse watermarks exist in _d1cdc_watermarks): "
                "the app writes to MySQL now, and a forward backfill would delete there every "
                "row written since; after a rollback (`d1cdc cutover rollback`) it may run again"
            )
        if reverse and not started:
            raise ConfigError(
                "no reverse watermarks in _d1cdc_watermarks: run `d1cdc cutover start` before "
                "`backfill --reverse` (after `d1cdc cutover rollback` the reverse poller stops: "
                "the app writes to D1 again)"
            )

    return guard


def _applied_by(
    settings: Settings, *groups: tuple[str, TopicOf]
) -> Callable[[str], Callable[[], bool]]:
    """`applied(table)` notes the end offsets of the table's topic(s) now, and returns the
    check "has each (group, topic) committed through them?" (the loop's own caught-up rule).
    """
    admin = admin_client(settings.kafka_bootstrap)

    def applied(table: str) -> Callable[[], bool]:
        watched = []
        for group, topic_of in groups:
            topic = topic_of(settings.topic_prefix, table)
            try:
                ends = topic_offsets(admin, [topic], OffsetSpec.latest())  # type: ignore[no-untyped-call]
            except KafkaException as exc:
                _log.warning("topic end unknown; deletes not checked this pass",
                             table=table, topic=topic, error=str(exc))  # fmt: skip
                return lambda: False  # never guessed: the next pass notes it again
            watched.append((group, topic, ends))

        def done() -> bool:
            try:
                return all(
                    group_progress(admin, group, [topic]).caught_up(until=ends)
                    for group, topic, ends in watched
                )
            except KafkaException as exc:
                _log.info("apply progress unknown for now", table=table, error=str(exc))
                return False

        return done

    return applied


def _wait_for_target(engine: Engine, stop: threading.Event, *, patient: bool) -> None:
    """Ping the target; a follower waits (with backoff) for it to come up, a one-shot run
    retries a few times, then fails with one line naming the target."""
    attempts = 0
    while True:
        try:
            ping(engine)
            return
        except ServiceError as exc:
            attempts += 1
            if (not patient and attempts >= 4) or stop.is_set():
                raise
            delay = min(MAX_BACKOFF_S, 0.5 * 2**attempts)
            _log.warning("target unavailable; waiting for it", error=str(exc), retry_in_s=delay)
            stop.wait(delay)


def backfill(
    ctx: typer.Context,
    tables: list[str] | None = typer.Option(
        None, "--tables", help="Only these tables (repeat or comma-separate). Default: all."
    ),
    follow: bool = typer.Option(False, "--follow", help="Keep polling until SIGTERM/Ctrl-C."),
    interval: float | None = typer.Option(
        None, "--interval", min=0.1, help="Seconds between polls (D1CDC_BACKFILL_INTERVAL_S, 10)."
    ),
    chunk: int | None = typer.Option(
        None, "--chunk", min=1, max=100_000, help="Rows per page (D1CDC_BACKFILL_CHUNK, 5000)."
    ),
    lookback: float | None = typer.Option(
        None,
        "--lookback",
        min=0,
        help="Seconds re-read behind each watermark, for late commits "
        "(D1CDC_BACKFILL_LOOKBACK_S, 300).",
    ),
    deletes: bool | None = typer.Option(
        None,
        "--deletes/--no-deletes",
        help="Detect hard deletes by a key-set diff each pass (D1CDC_BACKFILL_DETECT_DELETES).",
    ),
    deletes_every: float | None = typer.Option(
        None,
        "--deletes-every",
        min=0,
        help="Seconds between a table's delete diffs while following; 0 = every pass "
        "(D1CDC_BACKFILL_DELETES_EVERY_S, 0).",
    ),
    source_path: str | None = typer.Option(None, "--source-path", help="SQLite source file."),
    mapping_path: str | None = typer.Option(None, "--mapping", help="Mapping file."),
    reverse: bool = typer.Option(
        False,
        "--reverse",
        help="After cut-over: poll MySQL and emit its changes for D1 (`consume --into d1`) on "
        "{prefix}.reverse.{table}; starts at the marks `cutover start` saved.",
    ),
    binlog: bool = typer.Option(
        False,
        "--binlog",
        help="With --reverse, on self-hosted MySQL/MariaDB (not PlanetScale): read the row "
        "binlog instead of polling; sees every write, whether or not it bumps updatedAt. "
        "Starts at the binlog's end on first run, then at its saved position.",
    ),
) -> None:
    """Emit source rows as `backfill` upserts by watermark; resumable after a crash."""
    settings = settings_from(
        ctx,
        source_path=source_path,
        mapping_path=mapping_path,
        backfill_interval_s=interval,
        backfill_chunk=chunk,
        backfill_lookback_s=lookback,
        backfill_detect_deletes=deletes,
        backfill_deletes_every_s=deletes_every,
    )
    mapping = load_mapping(settings.mapping_path)
    selected = select_tables(mapping, tables)
    options = backfill_options(settings)
    if binlog:
        _binlog_source(settings, selected, reverse=reverse, follow=follow)
        return
    stop = threading.Event()
    # the current chunk is flushed, its watermark saved
    restore = stop_on_signals(stop.set, deadline_s=settings.shutdown_deadline_s)
    try:
        emitted = run_backfill(
            settings,
            mapping,
            selected,
            options,
            follow=follow,
            interval_s=settings.backfill_interval_s,
            stop=stop,
            reverse=reverse,
        )
    finally:
        restore()
    if not follow:
        what = "reverse backfill" if reverse else "backfill"
        typer.echo(f"{what} emitted {emitted} rows from {len(selected)} tables", err=True)


def _binlog_source(
    settings: Settings, tables: list[TableMapping], *, reverse: bool, follow: bool
) -> None:
    """`backfill --reverse --binlog` (producers/reverse_binlog.py): without --follow it
    reads up to the binlog's current end; SIGTERM saves the acknowledged position and stops."""
    if not reverse:
        raise ConfigError("--binlog reads MySQL's binlog for the reverse pipeline: add --reverse")
    stop = threading.Event()
    restore = stop_on_signals(stop.set, deadline_s=settings.shutdown_deadline_s)
    try:
        emitted = run_reverse_binlog(settings, tables, follow=follow, stop=stop)
    finally:
        restore()
    typer.echo(f"binlog reverse source emitted {emitted} events", err=True)


def backfill_options(settings: Settings) -> BackfillOptions:
    """The poller's options, from the settings (where every flag lands)."""
    return BackfillOptions(
        chunk=settings.backfill_chunk,
        lookback_s=settings.backfill_lookback_s,
        detect_deletes=settings.backfill_detect_deletes,
        deletes_every_s=settings.backfill_deletes_every_s,
        settle_timeout_s=settings.backfill_settle_timeout_s,
    )
