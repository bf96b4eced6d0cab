"""verify's result as a Prometheus textfile (node_exporter's textfile collector), so the
"row delta > 0" alert of ops/prometheus/alerts.yml can fire from a scheduled verify."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from worker.verify.runner import TableReport


def write_verify_metrics(path: Path, reports: list[TableReport]) -> None:
    registry = CollectorRegistry()
    differences = Gauge(
        "d1cdc_verify_differences",
        "Rows that differ between source and target at the last verify, per category.",
        ["table", "category"],
        registry=registry,
    )
    in_flight = Gauge(
        "d1cdc_verify_in_flight",
        "Rows that changed while verify ran.",
        ["table"],
        registry=registry,
    )
    last_run = Gauge(
        "d1cdc_verify_last_run_timestamp_seconds", "When verify last finished.", registry=registry
    )
    for r in reports:
        differences.labels(r.table, "missing").set(r.missing)
        differences.labels(r.table, "extra").set(r.extra)
        differences.labels(r.table, "mismatched").set(r.mismatched)
        in_flight.labels(r.table).set(r.in_flight)
    last_run.set(time.time())
    write_to_textfile(str(path), registry)  # writes a temp file and renames: atomic
