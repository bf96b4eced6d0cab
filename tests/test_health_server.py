"""The /metrics + /healthz server answers the liveness probe while a scrape hangs."""

from __future__ import annotations

import socket

import httpx

from worker.metrics import Health, serve_health


def test_a_stuck_client_does_not_block_the_liveness_probe() -> None:
    """A client that opened a request and never finished it (a slow scrape) holds one
    thread; /healthz is still answered (a single-threaded server would wait forever)."""
    server = serve_health(0, Health(), host="127.0.0.1")
    port = server.server_address[1]
    stuck = socket.create_connection(("127.0.0.1", port))
    try:
        stuck.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never end
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3.0)
        assert response.status_code == 200 and response.text == "ok\n"
    finally:
        stuck.close()
        server.shutdown()
