"""The worker's HTTP endpoint: /metrics from prometheus_client, /healthz and /readyz."""

from __future__ import annotations

import time

import httpx

from worker.metrics import EVENTS_APPLIED, Health, serve_health


def test_health_endpoints_follow_the_loop_state() -> None:
    """healthz = polled recently; readyz = also assigned and MySQL reachable; metrics served."""
    health = Health(stale_after_s=60)
    server = serve_health(0, health, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503
        health.assigned = health.mysql_ok = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        health.last_poll = time.monotonic() - 120  # the loop is stuck
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert httpx.get(f"{base}/readyz").status_code == 503
        EVENTS_APPLIED.labels("user", "upsert").inc(3)
        body = httpx.get(f"{base}/metrics").text
        assert 'd1cdc_events_applied_total{op="upsert",table="user"}' in body
        assert "d1cdc_apply_seconds_bucket" in body
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.shutdown()
        server.server_close()
