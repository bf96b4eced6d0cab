"""`d1cdc cutover check | start | rollback`: the switch of the app's writes to MySQL, and back.

- `check`: may the writes switch now? Each check is a row (name, ok, detail): the apply
  group caught up on every mapped table, capture current with an empty change log, a clean
  verify, no pending dead letters.
- `start`: the check, then the reverse pipeline's starting point (issue 16): the reverse
  topics and each table's reverse start watermark, taken in MySQL just before the switch,
  so `backfill --reverse` ships only what changes after it.
- `rollback`: after the writes went back to D1, the reverse pipeline must have brought
  D1 level (the rule of `status --reverse`); then the reverse watermarks are cleared, so a
  forward `backfill` may run again and a later cut-over starts afresh.

"Verify clean" accepts the last recorded `d1cdc verify` run when it is clean and younger
than `--verify-max-age-minutes`, rather than verifying here: a full verify reads every row
of D1 (minutes, and D1 API requests), while this check is meant to be repeated until it
passes, right before the switch. Run `d1cdc verify` once the writes to D1 have stopped and
the final backfill pass has been applied; the lag and capture checks then say nothing
changed since.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from producers.keyset import unread_count
from producers.reverse_binlog import (
    BinlogPositionStore,
    binlog_position_saved,
    mark_binlog_start,
)
from producers.reverse_poller import reverse_watermarks, start_marks
from producers.watermarks import WatermarkStore
from worker.cli.context import settings_from
from worker.cli.status_report import REVERSE, Status, collect_status, rollback_safety
from worker.config import Settings
from worker.console import make_console
from worker.db import target_engine
from worker.schema.mapping import Mapping, load_mapping
from worker.sources import open_source
from worker.topics import ensure_table_topics, reverse_topic_for

cutover_app = typer.Typer(
    help="Switch the app's writes to MySQL (check, start) and back to D1 (rollback).",
    no_args_is_help=True,
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def cutover_checks(status: Status, *, verify_max_age: timedelta) -> list[Check]:
    """The forward `status` judged for the switch of writes; every check must pass."""
    if status.total_lag:
        lag = Check(
            "forward lag", False, f"{status.total_lag} event(s) not applied: {status.lagging()}"
        )
    elif status.rebalancing:
        lag = Check("forward lag", False, f"the apply group is rebalancing ({status.group_state})")
    else:
        lag = Check("forward lag", True, f"0 on {len(status.tables)} table(s)")
    return [lag, _capture_check(status), _verify_check(status, verify_max_age), _dlq_check(status)]


def _capture_check(status: Status) -> Check:
    capture = status.capture
    if capture is None:
        return Check("capture", True, "not installed in the source (shim and backfill only)")
    if capture.error:
        return Check("capture", False, f"not checked: {capture.error}")
    if capture.problems:
        return Check(
            "capture",
            False,
            f"{len(capture.problems)} trigger problem(s), e.g. {capture.problems[0]} "
            "(`d1cdc capture check`)",
        )
    if capture.depth:
        return Check(
            "capture",
            False,
            f"the change log holds {capture.depth} entries, the oldest {capture.lag_s:.0f} s "
            "(is `d1cdc relay` running? have the writes to D1 stopped?)",
        )
    return Check("capture", True, "triggers current, change log empty")


def _verify_check(status: Status, max_age: timedelta) -> Check:
    run = status.last_verify
    if run is None:
        return Check("verify", False, "no verify run recorded (run `d1cdc verify`)")
    age = datetime.now(UTC).replace(tzinfo=None) - run.finished_at
    when = f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC, {age.total_seconds() / 60:.0f} min ago"
    if not run.clean:
        found = f"{run.differences} difference(s)"
        return Check("verify", False, f"the last run ({when}) found {found}")
    if age > max_age:
        limit = max_age.total_seconds() / 60
        return Check("verify", False, f"the last clean run is too old ({when}; max {limit:g} min)")
    return Check("verify", True, f"clean ({when})")


def _dlq_check(status: Status) -> Check:
    if status.dlq_pending:
        return Check("dead letters", False, f"{status.dlq_pending} pending (`d1cdc dlq list`)")
    return Check("dead letters", True, "0 pending")


def render_checks(checks: list[Check], console: Console) -> None:
    """A table on a terminal; one plain line per check otherwise (logs, pipes)."""
    if console.is_terminal:
        table = Table("check", "ok", "detail", title="d1cdc cutover check")
        for c in checks:
            verdict = "ok" if c.ok else "NOT OK"
            table.add_row(c.name, verdict, c.detail, style=None if c.ok else "red")
        console.print(table)
        return
    for c in checks:
        console.print(f"{'ok' if c.ok else 'NOT OK':<6}  {c.name:<12}  {c.detail}", markup=False)


def _forward_checks(
    settings: Settings, mapping: Mapping, engine: Engine, max_age: float
) -> list[Check]:
    names = [t.name for t in mapping.in_level_order()]
    status = collect_status(settings, names, engine, last_applied=False, mapping=mapping)
    checks = cutover_checks(status, verify_max_age=timedelta(minutes=max_age))
    if status.capture is None:  # without capture, only the poller brings D1's writes over
        checks.append(_poller_check(settings, mapping, engine))
    return checks


def _poller_check(settings: Settings, mapping: Mapping, engine: Engine) -> Check:
    """Without capture the forward poller is what ships D1's writes: has it read every row
    D1 holds? A write after its last pass is in neither the topics nor MySQL, and lag 0
    and a clean verify of an hour ago do not show it."""
    marks = WatermarkStore(engine).all()
    source = open_source(settings)
    unread: list[str] = []
    try:
        for table in mapping.in_level_order():
            if table.version_columns:
                page = unread_count(table, marks.get(table.name))
                n = int(source.query(page.sql, page.params)[0]["n"])
                if n:
                    unread.append(f"{table.name}={n}")
    finally:
        source.close()
    if unread:
        return Check(
            "forward poller",
            False,
            f"D1 rows newer than its watermark: {', '.join(unread[:5])} (stop the writes to "
            "D1, then run `d1cdc backfill` once)",
        )
    return Check("forward poller", True, "has read every versioned row D1 holds")


_MAX_AGE = typer.Option(
    60.0, "--verify-max-age-minutes", min=0, help="Accept a clean verify run younger than this."
)
_FORCE_HELP = "Go on although a check failed (printed as a warning): you take the risk."


@cutover_app.command()
def check(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    verify_max_age_minutes: float = _MAX_AGE,
) -> None:
    """Is it safe to switch the app's writes to MySQL? Exit 0 safe, 1 not safe, 2 error."""
    settings = settings_from(ctx)
    mapping = load_mapping(settings.mapping_path)
    engine = target_engine(settings, pool_size=1)
    try:
        checks = _forward_checks(settings, mapping, engine, verify_max_age_minutes)
    finally:
        engine.dispose()
    safe = all(c.ok for c in checks)
    if as_json:
        json.dump({"safe": safe, "checks": [asdict(c) for c in checks]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = make_console()
        render_checks(checks, console)
        console.print("safe to switch writes to MySQL" if safe else "NOT safe to switch writes")
    if not safe:
        raise typer.Exit(1)


def _refuse(message: str, *, force: bool) -> None:
    """Stop with exit 1, or with `--force` go on after a warning on stderr."""
    if not force:
        typer.echo(f"d1cdc: refused: {message}", err=True)
        raise typer.Exit(1)
    typer.echo(f"d1cdc: WARNING (--force): {message}", err=True)


@cutover_app.command()
def start(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
    verify_max_age_minutes: float = _MAX_AGE,
) -> None:
    """Run the check, then create the reverse topics and write the reverse start watermarks
    (MySQL's current versions). Run it with the app's writes to D1 stopped, just before
    they switch to MySQL."""
    settings = settings_from(ctx)
    mapping = load_mapping(settings.mapping_path)
    tables = mapping.in_level_order()
    engine = target_engine(settings, pool_size=1)
    console = make_console()
    try:
        store = reverse_watermarks(engine)
        started = sorted(store.all())
        if started:
            _refuse(
                f"the cut-over has already started: reverse watermarks exist for "
                f"{', '.join(started[:5])} (`d1cdc cutover rollback` clears them; --force "
                "writes new ones, and the reverse poller skips what changed before them)",
                force=force,
            )
        checks = _forward_checks(settings, mapping, engine, verify_max_age_minutes)
        render_checks(checks, console)
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
        if failed:
            _refuse("not safe to switch writes: " + "; ".join(failed), force=force)
        topics = ensure_table_topics(settings, [t.name for t in tables], topic_of=reverse_topic_for)
        # After the topics: a failure there leaves no watermark that would block a retry.
        marks = start_marks(engine, tables)
        for name, mark in marks.items():
            store.save(name, mark)
        binlog = mark_binlog_start(engine)  # for `backfill --reverse --binlog`, if served
    finally:
        engine.dispose()
    for name in topics.created:
        console.print(f"created topic {name}", markup=False)
    for name, mark in marks.items():
        console.print(f"reverse start watermark {name}: {mark.phase}, version={mark.version}")
    if binlog is not None:
        console.print(
            f"binlog start position {binlog.log_file}:{binlog.log_pos} "
            "(for `backfill --reverse --binlog`)",
            markup=False,
        )
    console.print(
        "\nNext steps:\n"
        "  1. stop the forward `backfill --follow` now, while writes are frozen (a running "
        "one stops at its next pass; none starts from now on: it would take rows written to "
        "MySQL for rows deleted in D1);\n"
        "  2. switch the app's writes to MySQL (the flag flip);\n"
        "  3. start the reverse poller: d1cdc backfill --reverse --follow\n"
        "  4. start the D1 sink: d1cdc consume --into d1\n"
        "  5. watch D1 catch up: d1cdc status --reverse, d1cdc verify --reverse",
        markup=False,
    )


@cutover_app.command()
def rollback(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
) -> None:
    """After the app's writes went back to D1: check that the reverse pipeline brought D1
    level with MySQL (as `status --reverse`), then clear the reverse watermarks."""
    settings = settings_from(ctx)
    mapping = load_mapping(settings.mapping_path)
    engine = target_engine(settings, pool_size=1)
    console = make_console()
    try:
        if not reverse_watermarks(engine).all():
            console.print("no cut-over in progress (no reverse watermarks): nothing to clear")
            return
        names = [t.name for t in mapping.in_level_order()]
        status = collect_status(
            settings, names, engine, last_applied=False, mapping=mapping, direction=REVERSE
        )
        reasons = rollback_safety(status)
        if reasons:
            _refuse("D1 has not caught up with MySQL: " + "; ".join(reasons), force=force)
        cleared = reverse_watermarks(engine).clear()
        if binlog_position_saved(engine) is not None:
            BinlogPositionStore(engine).clear()  # a later cut-over marks its own start
    finally:
        engine.dispose()
    console.print(f"cleared {cleared} reverse watermark(s)")
    console.print(
        "\nNext steps:\n"
        "  1. stop the D1 sink (`consume --into d1`) and, if still running, the reverse "
        "poller (`backfill --reverse --follow`);\n"
        "  2. start the forward pipeline again: d1cdc backfill --follow (and d1cdc relay "
        "with capture); keep d1cdc consume running;\n"
        "  3. d1cdc status, then d1cdc verify: MySQL follows D1 again",
        markup=False,
    )
