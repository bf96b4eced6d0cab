"""Prometheus metrics and the health endpoints of a long-lived d1cdc process.

`/metrics` is prometheus_client's own WSGI app; `/healthz` answers 200 while the loop is
alive (it polled Kafka recently) and `/readyz` 200 while it is also assigned partitions
and MySQL answers. Served by the standard library's wsgiref in a daemon thread, one thread
per request: no extra dependency, a scrape never blocks the consume loop, and a slow or
stuck scrape never blocks the liveness probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

EVENTS_APPLIED = Counter(
    "d1cdc_events_applied_total", "Changes sent to MySQL, per table and op.", ["table", "op"]
)
EVENTS_STALE = Counter(
    "d1cdc_events_stale_total",
    "Changes skipped as older than the target's tombstone/version.",
    ["table"],
)
DEAD_LETTERS = Counter("d1cdc_dead_letters_total", "Events sent to the dead-letter topic.")
RETRIES = Counter("d1cdc_mysql_retries_total", "Transient MySQL errors retried in process.")
BATCH_SIZE = Histogram(
    "d1cdc_batch_size",
    "Messages per consumed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000),
)
APPLY_SECONDS = Histogram(
    "d1cdc_apply_seconds",
    "Wall time to apply one batch to MySQL (incl. retries).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
END_TO_END_LAG = Gauge(
    "d1cdc_end_to_end_lag_seconds", "Now minus ts_ms of the newest event of the last batch."
)
CONSUMER_LAG = Gauge(
    "d1cdc_consumer_lag_messages", "High watermark minus position.", ["topic", "partition"]
)
HELD_COLLISIONS = Gauge(
    "d1cdc_held_collisions",
    "Upserts held back by a secondary UNIQUE collision, being retried before a dead letter.",
)
PAUSED = Gauge("d1cdc_paused", "1 while partitions are paused because MySQL is unavailable.")


@dataclass
class Health:
    """What the loop reports about itself; read by the HTTP thread."""

    stale_after_s: float = 60.0
    last_poll: float = field(default_factory=time.monotonic)
    assigned: bool = False
    mysql_ok: bool = False

    def polled(self) -> None:
        self.last_poll = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last_poll < self.stale_after_s

    @property
    def ready(self) -> bool:
        return self.alive and self.assigned and self.mysql_ok


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def health_app(health: Health) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = health.alive if path == "/healthz" else health.ready
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            return [b"ok\n" if ok else b"not ok\n"]
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the structured log."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_health(port: int, health: Health, host: str = "0.0.0.0") -> WSGIServer:
    """Start the HTTP endpoint in a daemon thread; `server.shutdown()` stops it."""
    server = make_server(
        host,
        port,
        health_app(health),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="d1cdc-metrics", daemon=True).start()
    return server


RELAY_LOG_DEPTH = Gauge("d1cdc_relay_log_depth", "Change-log entries not yet shipped to Kafka.")
RELAY_LAG = Gauge(
    "d1cdc_relay_lag_seconds", "D1's clock minus ts_ms of the oldest unshipped change-log entry."
)
RELAY_EVENTS = Counter(
    "d1cdc_relay_events_total", "Change-log entries shipped and acknowledged, per table.", ["table"]
)
CAPTURE_DRIFT = Gauge(
    "d1cdc_capture_drift_problems",
    "Differences between the installed capture triggers and the mapping (`capture check`).",
)
