"""Apply throughput: the Kafka → MySQL pipeline (and d1cdc's sink) vs bare PyMySQL.

    eval "$(bash ops/services.sh env)"
    .venv/bin/python ops/bench/bench_apply.py --pipeline            # demo rows, 200k
    .venv/bin/python ops/bench/bench_apply.py --workload synthetic --rows 50000  # sink vs bare
    .venv/bin/python ops/bench/bench_apply.py --pipeline --against HEAD~1  # a change on/off
    .venv/bin/python ops/bench/bench_apply.py --pipeline-only --consumers 2 --backlog-late 3
    .venv/bin/python ops/bench/bench_apply.py --pipeline --mysql-delay-ms 0.5  # a far database

Workloads: `demo` (default) is every row of a demo D1 database (59 tables, the types the
demo app uses) generated to about `--rows` rows; `synthetic` is one 15-column table (text,
ints, booleans, JSON, timestamps; `updatedAt` the version column), which additionally
compares the sink alone with bare PyMySQL on an insert pass and an update pass.

Baseline: the same rows, converted beforehand, upserted per table with a bare PyMySQL
`executemany` of `INSERT … ON DUPLICATE KEY UPDATE`, `--batch` rows per statement, a commit
every 5,000 rows, into a fresh database on the same server, in the same process. Pipeline:
the rows as change events in Kafka, applied by `d1cdc consume` processes (see
`run_pipeline`). Not a timed test: numbers depend on the machine, the ratio much less.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pymysql
import sqlalchemy as sa

from consumers.change import Change, MessageRef
from consumers.sink import MySQLSink
from consumers.versions import encode_version
from worker.db import create_database, create_target_engine
from worker.demo import generate_demo_db, ground_truth_mapping
from worker.schema.convert import convert_row, version_of
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import Mapping, TableMapping, mapping_from_dict
from worker.schema.writer import mapping_to_toml

BASE_MS = 1_760_000_000_000
REPO = Path(__file__).resolve().parents[2]
COLUMNS: dict[str, str] = {
    "id": "string(32)",
    "email": "string(120)",
    "name": "text",
    "plan": "string(20)",
    "active": "boolean",
    "verified": "boolean",
    "credits": "bigint",
    "seats": "integer",
    "score": "real",
    "settings": "json",
    "bio": "text",
    "country": "string(2)",
    "createdAt": "timestamp_s",
    "lastSeenAt": "timestamp_ms",
    "updatedAt": "timestamp_ms",
}


def bench_mapping() -> Mapping:
    columns = {n: {"type": t, "nullable": n != "id"} for n, t in COLUMNS.items()}
    table = {"primary_key": ["id"], "version_columns": ["updatedAt"], "columns": columns}
    return mapping_from_dict({"tables": {"bench_user": table}})


def source_row(i: int, version: int) -> dict[str, Any]:
    return {
        "id": f"usr_{i:012d}",
        "email": f"user{i}@example.com",
        "name": f"User Number {i}",
        "plan": ("free", "pro", "team")[i % 3],
        "active": i % 2,
        "verified": (i // 2) % 2,
        "credits": i * 37,
        "seats": i % 50,
        "score": i / 7,
        "settings": '{"theme":"dark","beta":true}',
        "bio": "x" * (i % 80),
        "country": "DE",
        "createdAt": 1_700_000_000 + i,
        "lastSeenAt": BASE_MS + i,
        "updatedAt": BASE_MS + version,
    }


@dataclass
class Workload:
    """MessageRef rows to replicate: (table, row as SQLite returns it) in insert order."""

    name: str
    mapping: Mapping
    rows: list[tuple[str, dict[str, Any]]]
    mapping_path: Path


def synthetic_workload(rows: int, directory: Path) -> Workload:
    path = directory / "bench_user.toml"
    path.write_text(mapping_toml())
    events = [("bench_user", source_row(i, 1)) for i in range(rows)]
    return Workload("synthetic bench_user, 15 columns", bench_mapping(), events, path)


def demo_workload(rows: int, directory: Path) -> Workload:
    """Every row of a demo D1 database (59 tables) generated big enough for `rows`."""
    db = directory / "demo.sqlite"
    scale = rows / sum(generate_demo_db(db, scale=1.0, overwrite=True).rows_per_table.values())
    generate_demo_db(db, scale=scale, overwrite=True)
    mapping = ground_truth_mapping()
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    events = [
        (table.name, dict(row))
        for table in mapping.in_level_order()
        for row in conn.execute(f'SELECT * FROM "{table.name}"')
    ]
    conn.close()
    path = directory / "demo.toml"
    path.write_text(mapping_to_toml(mapping))
    return Workload(f"demo D1 database, {len(mapping.tables)} tables", mapping, events, path)


def bare_insert_all(server_url: str, workload: Workload, batch: int) -> float:
    """Seconds for the bare PyMySQL upsert of every workload row (converted), per table."""
    url = fresh_database(server_url, workload.mapping)
    per_table: dict[str, list[tuple[Any, ...]]] = {}
    for name, row in workload.rows:
        table = workload.mapping.table(name)
        converted = convert_row(table, row)
        per_table.setdefault(name, []).append(tuple(converted[c] for c in table.columns))
    conn = bare_connection(url)
    services_before = service_use(url)
    started = time.perf_counter()
    for name, params in per_table.items():
        bare_upsert(conn, workload.mapping.table(name), params, batch)
    seconds = time.perf_counter() - started
    services = service_use(url) - services_before
    conn.close()
    drop_database(server_url, url)
    print(f"  bare: {services.describe(len(workload.rows))}")
    return seconds


@dataclass(frozen=True)
class ServiceUse:
    """What the local MariaDB and Kafka have done: CPU seconds (None when the process is not
    on this machine) and MariaDB's statements and commits from every client."""

    mariadb: float | None
    kafka: float | None
    statements: int
    commits: int

    def __sub__(self, other: ServiceUse) -> ServiceUse:
        return ServiceUse(
            _less(self.mariadb, other.mariadb),
            _less(self.kafka, other.kafka),
            self.statements - other.statements,
            self.commits - other.commits,
        )

    def describe(self, count: int) -> str:
        """Per event (or row): the services' CPU and the rows per statement MariaDB ran."""
        cpu = [
            f"{name} {seconds / count * 1e6:.1f} µs"
            for name, seconds in (("MariaDB", self.mariadb), ("Kafka", self.kafka))
            if seconds is not None
        ]
        return ", ".join(
            [
                *cpu,
                f"{count / max(1, self.statements):.0f} rows per statement "
                f"({self.statements:,} statements, {self.commits:,} commits)",
            ]
        )


def _less(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def service_use(url: str) -> ServiceUse:
    """Where the cores went besides the consumers (the two cores are shared with both), and
    how many statements MariaDB ran (`Questions` counts each one a client sends)."""
    mariadb: float | None = None
    kafka: float | None = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes() if comm == "java" else b""
        except OSError:
            continue
        if comm in ("mariadbd", "mysqld"):
            mariadb = (mariadb or 0.0) + _cpu_seconds(int(proc.name))
        elif b"kafka.Kafka" in cmdline:
            kafka = (kafka or 0.0) + _cpu_seconds(int(proc.name))
    conn = bare_connection(url)
    with conn.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_commit')")
        status = {name: int(value) for name, value in cursor.fetchall()}
    conn.close()
    return ServiceUse(mariadb, kafka, status["Questions"], status["Com_commit"])


def changes_for(table: TableMapping, count: int, version: int) -> list[Change]:
    result = []
    for i in range(count):
        row = convert_row(table, source_row(i, version))
        values = version_of(table, row)
        src = MessageRef("bench.bench_user", 0, i, None, None)
        result.append(
            Change(
                table.name,
                "upsert",
                {"id": row["id"]},
                row,
                encode_version(values),
                BASE_MS + version,
                src,
                values,
            )
        )
    return result


def bare_connection(url: str) -> pymysql.Connection[Any]:
    parsed = sa.engine.make_url(url)
    return pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        charset="utf8mb4",
    )


def bare_upsert(
    conn: pymysql.Connection[Any], table: TableMapping, rows: list[tuple[Any, ...]], batch: int
) -> None:
    """The baseline: PyMySQL executemany of a plain `INSERT … ON DUPLICATE KEY UPDATE`."""
    names = list(table.columns)
    cols = ", ".join(f"`{c}`" for c in names)
    updated = [c for c in names if c not in table.primary_key] or names[:1]
    sets = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in updated)
    sql = (
        f"INSERT INTO `{table.name}` ({cols}) VALUES ({', '.join(['%s'] * len(names))}) "
        f"ON DUPLICATE KEY UPDATE {sets}"
    )
    with conn.cursor() as cur:
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            for part in range(0, len(chunk), batch):
                cur.executemany(sql, chunk[part : part + batch])
            conn.commit()


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def fresh_database(server_url: str, mapping: Mapping) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    create_database(server_url, name)
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_target_engine(url)
    apply_mapping(engine, mapping)
    engine.dispose()
    return url


def drop_database(server_url: str, url: str) -> None:
    engine = create_target_engine(server_url, pool_size=1)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{sa.engine.make_url(url).database}`")
    engine.dispose()


def run_sink_vs_bare(server_url: str, rows: int, batch: int, repeat: int) -> dict[str, list[float]]:
    """Seconds per contender and pass, `repeat` times, alternating who goes first."""
    mapping = bench_mapping()
    table = mapping.table("bench_user")
    passes = {label: changes_for(table, rows, v) for label, v in (("insert", 1), ("update", 10**9))}
    seconds: dict[str, list[float]] = {}
    for round_ in range(repeat):
        d1_url, bare_url = fresh_database(server_url, mapping), fresh_database(server_url, mapping)
        engine = create_target_engine(d1_url)
        sink = MySQLSink(engine, mapping, rows_per_statement=batch, rows_per_transaction=5000)
        sink.apply([])  # side table created outside the measurement
        bare_conn = bare_connection(bare_url)
        for label, changes in passes.items():
            params = [tuple(c.row[n] for n in table.columns) for c in changes if c.row]
            contenders: list[tuple[str, Callable[[], Any]]] = [
                (f"d1cdc sink, {label}", partial(sink.apply, changes)),
                (f"bare PyMySQL, {label}", partial(bare_upsert, bare_conn, table, params, batch)),
            ]
            if round_ % 2:
                contenders.reverse()
            for name, fn in contenders:
                seconds.setdefault(name, []).append(timed(fn))
        engine.dispose()
        bare_conn.close()
        drop_database(server_url, d1_url)
        drop_database(server_url, bare_url)
    return seconds


def mapping_toml() -> str:
    lines = ["[tables.bench_user]", 'primary_key = ["id"]', 'version_columns = ["updatedAt"]']
    for name, kind in COLUMNS.items():
        lines += [f"[tables.bench_user.columns.{name}]", f'type = "{kind}"']
        lines.append(f"nullable = {'false' if name == 'id' else 'true'}")
    return "\n".join(lines) + "\n"


@dataclass
class PipelineRun:
    seconds: float  # until every offset is committed
    peak_mb: int  # the largest consumer's peak RSS
    cpu_us: float  # consumers' CPU per event while the clock ran (start-up excluded)
    shares: list[int]  # events each consumer applied, in start order
    late_assigned_s: float | None = None  # the late member's first partitions, after its start
    late_joined_s: float | None = None  # the late member in the group, after its start
    services: ServiceUse | None = None  # what MariaDB and Kafka did while the clock ran
    applied_before_late: int = 0  # events committed when the late member got partitions


def run_pipeline(
    server_url: str,
    bootstrap: str,
    workload: Workload,
    batch: int,
    consumers: int,
    partitions: int,
    *,
    tree: Path = REPO,
    backlog_late_s: float | None = None,
    python: str = sys.executable,
) -> PipelineRun:
    """`consumers` `d1cdc consume` processes in one group, running the code in `tree` (the
    working tree, or a commit exported by `--against`).

    Default: the consumers join and idle on the empty topics; then the workload's events
    (encoded beforehand) are produced as fast as librdkafka takes them, and the clock runs
    from the first event produced until the group has committed every offset (every event
    in MySQL). Joining first keeps start-up and the group protocol out of the figure:
    consumers are long-lived, and a rebalance in the middle of a run (a member learns of it
    only at its next heartbeat, ~3 s) would measure the group protocol, not the pipeline.

    `backlog_late_s` (a backlog, issue 15): the topics are filled first; the first consumer
    starts, the others `backlog_late_s` seconds after it holds partitions (0: all together),
    and the clock runs from the first start. That is the mode where a member joining
    mid-backlog must receive its share of the partitions quickly.
    """
    from bench_common import assigned_members, group_members, wait_for_group
    from confluent_kafka import Producer
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    from consumers.offsets import committed_offsets
    from consumers.offsets import topic_offsets as offsets
    from worker.envelope import encode_event, new_event
    from worker.kafka import admin_client, producer_config
    from worker.topics import dlq_topic, ensure_topics, topic_for

    url = fresh_database(server_url, workload.mapping)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    admin = admin_client(bootstrap)
    tables = list(workload.mapping.tables)
    ensure_topics(admin, prefix, tables, partitions, 1)
    messages = []
    for name, row in workload.rows:
        table = workload.mapping.table(name)
        event = new_event(name, "upsert", {k: row[k] for k in table.primary_key}, row)
        messages.append((topic_for(prefix, name), *encode_event(event)))
    group = f"{prefix}-apply"
    env = {
        **os.environ,
        # The code under test: `-c` puts the working directory first on sys.path, and
        # PYTHONPATH comes before the editable install's finder.
        "PYTHONPATH": str(tree),
        "D1CDC_KAFKA_BOOTSTRAP": bootstrap,
        "D1CDC_TARGET_URL": url,
        "D1CDC_TOPIC_PREFIX": prefix,
        "D1CDC_GROUP_ID": group,
        "D1CDC_MAPPING_PATH": str(workload.mapping_path),
        "D1CDC_BATCH_SIZE": os.environ.get("BENCH_CONSUME_BATCH", "2000"),
        "D1CDC_ROWS_PER_STATEMENT": str(batch),
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
    }
    command = [python, "-c", "from worker.cli.main import run; run()", "consume"]
    topics = [topic_for(prefix, t) for t in tables]

    logs: list[Path] = []

    def start() -> subprocess.Popen[bytes]:
        # stderr to a file (a pipe read only at the end could fill and block the child):
        # its last line says how many events it applied.
        logs.append(Path(tempfile.mkstemp(prefix="d1cdc-consume-", suffix=".log")[1]))
        with logs[-1].open("wb") as log:
            return subprocess.Popen(command, env=env, cwd=tree, stderr=log)

    def produce() -> None:
        failed: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failed.append(str(error))

        producer = Producer(producer_config(bootstrap))
        for topic, key, value in messages:
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
        if producer.flush(60) or failed:
            sys.exit(f"events not delivered to Kafka: {failed[:3]}")

    children: list[subprocess.Popen[bytes]] = []
    late_assigned_s = late_joined_s = None
    applied_before_late = 0
    try:
        if backlog_late_s is None:
            children = [start() for _ in range(consumers)]
            wait_for_group(admin, group, consumers, partitions * len(tables))
            cpu_before = sum(_cpu_seconds(child.pid) for child in children)
            services_before = service_use(url)
            started = time.perf_counter()
            produce()
        else:
            produce()
            cpu_before = 0.0  # start-up is part of this mode's figure
            services_before = service_use(url)
            started = time.perf_counter()
            children = [start() for _ in range(consumers if backlog_late_s == 0 else 1)]
        messages.clear()  # the parent's memory is not the consumers'
        ends = offsets(admin, topics, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        ends = {p: end for p, end in ends.items() if end > 0}
        pending = list(ends)
        first_members: set[str] | None = None
        first_assigned = late_started = 0.0
        done: dict[Any, int] = {}
        while pending and all(child.poll() is None for child in children):
            now = time.perf_counter()
            if backlog_late_s and len(children) < consumers:
                # S seconds after the first member holds partitions: mid-backlog for sure.
                if not first_assigned and assigned_members(admin, group):
                    first_assigned = now
                if first_assigned and now - first_assigned >= backlog_late_s:
                    first_members = set(assigned_members(admin, group))
                    late_started = now
                    children += [start() for _ in range(consumers - len(children))]
            elif first_members is not None and late_assigned_s is None:
                members = group_members(admin, group)
                if late_joined_s is None and set(members) - first_members:
                    late_joined_s = now - late_started  # start-up done, subscribed
                if {m for m, held in members.items() if held} - first_members:
                    late_assigned_s = now - late_started
                    applied_before_late = sum(max(0, done.get(p, 0)) for p in ends)
            # Only the committed offsets of the partitions still pending, in one request:
            # the whole group's progress (4 admin requests over 354 partitions) every 50 ms
            # took 0.45 of a core from the 2 the consumers share with MariaDB and Kafka.
            done.update(committed_offsets(admin, group, pending))
            pending = [p for p in pending if done.get(p, -1) < ends[p]]
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        services = service_use(url) - services_before
        # Each child's own high-water mark, read while it still runs (ru_maxrss of children
        # would count the pages a fork shares with this large parent before exec).
        peak_kb = max(_peak_rss_kb(child.pid) for child in children)
        # CPU seconds the consumers used while the clock ran: on a shared machine less
        # noisy than wall time, so the figure to compare a change on and off by.
        cpu_s = sum(_cpu_seconds(child.pid) for child in children) - cpu_before
        if pending:
            sys.exit("a d1cdc consume process exited before everything was applied")
        # Committed is not yet "in MySQL" for a dead-lettered event: count both.
        dead = sum(offsets(admin, [dlq_topic(prefix)], OffsetSpec.latest()).values())  # type: ignore[no-untyped-call]
        stored = target_rows(url, tables)
        if dead or stored != len(workload.rows):
            sys.exit(f"{stored} rows in MySQL and {dead} dead letters for {len(workload.rows)}")
    finally:
        for child in children:
            child.terminate()  # SIGTERM: finish the batch, commit, leave the group
        codes = [child.wait(60) for child in children]
        outputs = [log.read_text(errors="replace") for log in logs]
        for log, output in zip(logs, outputs, strict=True):
            log.unlink()
            if output.strip():
                print(textwrap.indent(output.strip(), "    consumer: "))
        drop_database(server_url, url)
        for future in admin.delete_topics([*topics, dlq_topic(prefix)]).values():
            future.result(60)  # 354 partitions per demo run: a broker keeping them slows down
    if any(codes):
        sys.exit(f"d1cdc consume exited with {codes}")
    shares = [_consumed(output) for output in outputs]
    cpu_us = cpu_s / len(workload.rows) * 1e6
    return PipelineRun(
        seconds,
        peak_kb // 1024,
        cpu_us,
        shares,
        late_assigned_s,
        late_joined_s,
        services,
        applied_before_late,
    )


def _consumed(output: str) -> int:
    """The event count in `d1cdc consume`'s last line ("consumed N messages in …")."""
    found = re.search(r"consumed (\d+) messages", output)
    return int(found.group(1)) if found else 0


PACKAGES = ("worker", "producers", "consumers")


def copy_tree(directory: Path) -> Path:
    """The working tree's packages as they are now, so an edit during a run changes nothing."""
    tree = directory / "tree-working"
    for package in PACKAGES:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / package, tree / package, ignore=ignore)
    return tree


def export_tree(rev: str, directory: Path) -> Path:
    """The packages of commit `rev`, exported (`git archive`) to run consumers from."""
    tree = directory / f"tree-{rev.replace('/', '_')}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, *PACKAGES],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def runtime_venv() -> Path:
    """.venv-runtime/bin/python, with d1cdc installed as the image installs it (no extras);
    re-installed when pyproject.toml is newer than the last install."""
    venv = REPO / ".venv-runtime"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or (REPO / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime:
        print(f"installing d1cdc's runtime dependencies into {venv}…", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
        stamp.touch()
    return python


def target_rows(url: str, tables: list[str]) -> int:
    engine = create_target_engine(url, pool_size=1)
    with engine.connect() as conn:
        total = sum(
            conn.exec_driver_sql(f"SELECT count(*) FROM `{t}`").scalar_one() for t in tables
        )
    engine.dispose()
    return int(total)


def _peak_rss_kb(pid: int) -> int:
    """The kernel's high-water mark of the process's resident memory (VmHWM): a peak
    between two polls still counts."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (/proc/<pid>/stat, fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_lag(
    server_url: str, bootstrap: str, rate: int, seconds: int, warmup: float = 2.0
) -> tuple[list[float], float]:
    """Produce `rate` events/s for `warmup` + `seconds` while a consumer runs; per-event lag
    in ms from `ts_ms` (set at produce time) to the end of the MySQL transaction that
    applied it, for the events of the last `seconds`, and the rate the producer achieved
    (events/s; below `rate` when this process cannot keep up).

    The warm-up is the consumer's start: it holds its partitions before the first event,
    but its first fetches (offset lookup, a fetch session per broker) still take a few
    hundred ms, and the events of those first 0.2 s waited up to 700 ms. Counted, they were
    3 % of a 20 s run, so its p99 measured the start, not the steady stream."""
    import threading

    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    from consumers.loop import ConsumeLoop
    from worker.config import load_settings
    from worker.envelope import encode_event, new_event
    from worker.kafka import admin_client, producer_config
    from worker.logs import configure_logging
    from worker.topics import dlq_topic

    mapping = bench_mapping()
    url = fresh_database(server_url, mapping)
    prefix = f"lag{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.bench_user"
    admin = admin_client(bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    lags: list[float] = []
    applied = 0
    counted_from_ms = 0.0  # set when the producer starts

    def measured(self: MySQLSink, changes: Any) -> Any:
        nonlocal applied
        result = original(self, changes)
        now_ms = time.time() * 1000
        applied += len(changes)
        lags.extend(now_ms - c.ts_ms for c in changes if c.ts_ms >= counted_from_ms)
        return result

    original = MySQLSink.apply

    MySQLSink.apply = measured  # type: ignore[method-assign]
    configure_logging(level="warning")  # the loop runs in this process: keep its logs quiet
    settings = load_settings(
        None,
        kafka_bootstrap=bootstrap,
        target_url=url,
        topic_prefix=prefix,
        group_id=f"{prefix}-apply",
        metrics_port=0,
        log_level="warning",
    )
    loop = ConsumeLoop(settings, mapping)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not loop.health.assigned and time.monotonic() < deadline:
        time.sleep(0.1)
    producer = Producer(producer_config(bootstrap))
    total = int(rate * (warmup + seconds))
    counted_from_ms = time.time() * 1000 + warmup * 1000
    start = time.monotonic()
    for i in range(total):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        event = new_event("bench_user", "upsert", {"id": f"usr_{i:012d}"}, source_row(i, 1))
        key, value = encode_event(event)
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    achieved = total / (time.monotonic() - start)
    producer.flush(30)
    while applied < total and time.monotonic() < start + warmup + seconds + 60:
        time.sleep(0.1)
    loop.stop()
    thread.join(30)
    MySQLSink.apply = original  # type: ignore[method-assign]
    loop.engine.dispose()
    drop_database(server_url, url)
    for future in admin.delete_topics([topic, dlq_topic(prefix)]).values():
        future.result(60)
    return lags, achieved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--workload",
        choices=["demo", "synthetic"],
        default="demo",
        help="demo: every row of a demo D1 database (59 tables) generated to --rows; "
        "synthetic: one 15-column table, which also compares sink and bare on updates",
    )
    parser.add_argument("--batch", type=int, default=500, help="rows per statement")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--pipeline", action="store_true", help="also Kafka → MySQL end to end")
    parser.add_argument("--pipeline-only", action="store_true", help="skip the bare baseline")
    parser.add_argument(
        "--consumers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="consumer process counts to run the pipeline with (one run each)",
    )
    parser.add_argument("--partitions", type=int, default=6, help="partitions per topic")
    parser.add_argument(
        "--against",
        nargs="+",
        default=[],
        metavar="REV",
        help="also run the pipeline with the consumers' code of these commits, in the same "
        "rounds (a fast path on and off)",
    )
    parser.add_argument(
        "--backlog-late",
        type=float,
        metavar="S",
        help="fill the topics first; start one consumer, the others S seconds after it holds "
        "partitions; "
        "compare with all started together",
    )
    parser.add_argument("--lag-rate", type=int, default=0, help="events/s for the lag run")
    parser.add_argument("--lag-seconds", type=int, default=30, help="measured part of the lag run")
    parser.add_argument(
        "--lag-warmup",
        type=float,
        default=2.0,
        help="seconds of the lag run's stream before the measured part (the consumer's start)",
    )
    parser.add_argument(
        "--runtime-venv",
        action="store_true",
        help="run the consumers by .venv-runtime's Python: d1cdc with its runtime dependencies "
        "only, as ops/Dockerfile installs them (created on first use). The test venv has more: "
        "testcontainers' mysql extra brings cryptography, and PyMySQL imports it when it is "
        "there (about 9 MB per process)",
    )
    parser.add_argument(
        "--mysql-delay-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="reach MariaDB through ops/bench/delayproxy, which holds every byte back MS ms "
        "each way (a round trip of 2 x MS, like a managed database in the same region: "
        "PlanetScale from a worker, ~1-2 ms); bare and pipeline alike. Needs Go",
    )
    args = parser.parse_args()
    server_url = os.environ.get("D1CDC_TARGET_URL")
    if not server_url:
        sys.exit('set D1CDC_TARGET_URL (eval "$(bash ops/services.sh env)")')
    if args.mysql_delay_ms:
        server_url = delayed(server_url, args.mysql_delay_ms)
        print(f"MariaDB through a {args.mysql_delay_ms:g} ms each-way delay proxy")
    bootstrap = os.environ.get("D1CDC_KAFKA_BOOTSTRAP", "")
    directory = Path(tempfile.mkdtemp(prefix="d1cdc-bench-"))
    make = demo_workload if args.workload == "demo" else synthetic_workload
    workload = make(args.rows, directory)
    count = len(workload.rows)
    print(f"workload: {workload.name}; {count:,} rows; {args.batch} rows per statement")
    if args.workload == "synthetic" and not args.pipeline_only:
        print_sink_vs_bare(run_sink_vs_bare(server_url, count, args.batch, args.repeat), count)
    if not (args.pipeline or args.pipeline_only):
        bare_runs = [bare_insert_all(server_url, workload, args.batch) for _ in range(args.repeat)]
        print_runs("bare PyMySQL upsert", count, bare_runs)
    else:
        compare_pipeline(args, server_url, bootstrap, workload, directory)
    if args.lag_rate:
        lags, achieved = run_lag(
            server_url, bootstrap, args.lag_rate, args.lag_seconds, args.lag_warmup
        )
        cuts = statistics.quantiles(lags, n=100)
        print(
            f"end-to-end lag at {args.lag_rate} events/s (produced at {achieved:,.0f}/s) for "
            f"{args.lag_seconds}s ({len(lags)} events): p50 {cuts[49]:.0f} ms, "
            f"p99 {cuts[98]:.0f} ms, max {max(lags):.0f} ms"
        )
    shutil.rmtree(directory)


def delayed(url: str, delay_ms: float) -> str:
    """`url` through a delay proxy started now (ended with this process): its URL."""
    build = Path(tempfile.mkdtemp(prefix="d1cdc-delayproxy-")) / "delayproxy"
    source = REPO / "ops" / "bench" / "delayproxy"
    subprocess.run(["go", "build", "-o", str(build), "."], cwd=source, check=True)
    parsed = sa.engine.make_url(url)
    proxy = subprocess.Popen(
        [
            str(build),
            "-upstream",
            f"{parsed.host}:{parsed.port or 3306}",
            "-delay",
            f"{delay_ms * 1000:.0f}us",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    atexit.register(proxy.terminate)
    assert proxy.stderr is not None
    host, port = proxy.stderr.readline().strip().rsplit(":", 1)
    threading.Thread(target=proxy.stderr.read, daemon=True).start()  # never a full pipe
    return parsed.set(host=host, port=int(port)).render_as_string(hide_password=False)


def compare_pipeline(
    args: argparse.Namespace,
    server_url: str,
    bootstrap: str,
    workload: Workload,
    directory: Path,
) -> None:
    """Rounds of: bare upsert, then the pipeline with each consumer count, for the working
    tree and each `--against` commit. Each pipeline run is compared with the bare run of its
    own round, and a commit with the working tree's run of the same round, so a machine that
    slows down or speeds up between rounds moves both sides of a ratio."""
    count = len(workload.rows)
    late = args.backlog_late
    mode = (
        "processes in one group (joined before the first event), timed from the first "
        "event produced until every offset is committed"
        if late is None
        else f"processes in one group on a full backlog, the first started alone, the "
        f"others {late:g} s after it holds partitions, and together: timed from the first "
        "start until every offset is committed"
    )
    print(f"pipeline Kafka → MySQL: {args.partitions} partitions per topic; `d1cdc consume` {mode}")
    trees = {
        "working tree": copy_tree(directory),
        **{rev: export_tree(rev, directory) for rev in args.against},
    }
    python = str(runtime_venv()) if args.runtime_venv else sys.executable
    if args.runtime_venv:
        print(f"consumers run by {python}: d1cdc's runtime dependencies only")
    lates = [None] if late is None else [late, 0.0]
    runs: dict[str, list[PipelineRun]] = {}
    bare_s: list[float] = []
    ratios: dict[str, list[float]] = {}
    for round_ in range(args.repeat):
        bare = 0.0 if args.pipeline_only else bare_insert_all(server_url, workload, args.batch)
        bare_s.append(bare)
        order = list(trees.items())
        if round_ % 2:
            order.reverse()  # who goes first alternates
        for consumers in args.consumers:
            for late_s in lates if consumers > 1 else [lates[-1]]:
                for label, tree in order:
                    run = run_pipeline(
                        server_url,
                        bootstrap,
                        workload,
                        args.batch,
                        consumers,
                        args.partitions,
                        tree=tree,
                        backlog_late_s=late_s,
                        python=python,
                    )
                    name = f"{consumers} consumer(s), {label}"
                    if late_s:
                        name += f", late by {late_s:g} s"
                    runs.setdefault(name, []).append(run)
                    ratios.setdefault(name, []).append(bare / run.seconds)
                    print(f"  round {round_ + 1}: {name}: {_describe(run, count)}", flush=True)
    if not args.pipeline_only:
        print_runs("bare PyMySQL upsert", count, bare_s)
    for name, results in runs.items():
        print_runs(f"pipeline, {name}", count, [r.seconds for r in results])
        cpu = statistics.median(r.cpu_us for r in results)
        peak = max(r.peak_mb for r in results)
        vs_bare = (
            ""
            if args.pipeline_only
            else f"vs bare: median {statistics.median(ratios[name]):.2f}x "
            f"(rounds: {' '.join(f'{r:.2f}' for r in ratios[name])}); "
        )
        print(f"    {vs_bare}consumers' CPU {cpu:.1f} µs/event; peak RSS {peak} MB")
    for rev in args.against:
        for name, results in runs.items():
            if not name.endswith(", working tree") and ", working tree," not in name:
                continue
            other = runs.get(name.replace("working tree", rev))
            if other:
                speed = [b.seconds / a.seconds for a, b in zip(results, other, strict=True)]
                cpu = [b.cpu_us / a.cpu_us for a, b in zip(results, other, strict=True)]
                print(
                    f"{name} vs {rev}: events/s x{statistics.median(speed):.2f} "
                    f"(rounds: {' '.join(f'{r:.2f}' for r in speed)}), CPU/event "
                    f"/{statistics.median(cpu):.2f} (rounds: {' '.join(f'{r:.2f}' for r in cpu)})"
                )


def _describe(run: PipelineRun, count: int) -> str:
    shares = "/".join(f"{100 * n / max(1, sum(run.shares)):.0f}" for n in run.shares)
    late = ""
    if run.late_assigned_s is not None:
        rest = count - run.applied_before_late  # what was left to share when it could start
        late = (
            f", late member in the group {run.late_joined_s:.1f} s and assigned "
            f"{run.late_assigned_s:.1f} s after its start, when "
            f"{run.applied_before_late:,} events were applied; it applied "
            f"{100 * run.shares[-1] / max(1, rest):.0f} % of the rest"
        )
    services = "" if run.services is None else f", {run.services.describe(count)}"
    return (
        f"{run.seconds:.2f} s = {count / run.seconds:,.0f} events/s, "
        f"CPU {run.cpu_us:.1f} µs/event{services}, shares {shares} %{late}"
    )


def print_runs(name: str, count: int, runs: list[float]) -> None:
    median = statistics.median(runs)
    print(
        f"{name:<32} median {median:6.2f}s = {count / median:>8,.0f} rows/s   "
        f"(runs: {' '.join(f'{t:.2f}' for t in runs)})"
    )


def print_sink_vs_bare(results: dict[str, list[float]], rows: int) -> None:
    median = {name: statistics.median(times) for name, times in results.items()}
    print(f"{'contender':<26}{'median s':>10}{'rows/s':>12}{'all runs (s)':>28}")
    for name, times in results.items():
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"{name:<26}{median[name]:>10.2f}{rows / median[name]:>12,.0f}{runs:>28}")
    for pass_ in ("insert", "update"):
        ratio = median[f"bare PyMySQL, {pass_}"] / median[f"d1cdc sink, {pass_}"]
        print(f"ratio d1cdc sink/bare ({pass_}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
