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


def test_the_health_command_turns_the_probe_into_an_exit_code() -> None:
    """`d1cdc health` (the image's HEALTHCHECK): 0 and the body when /healthz answers 200;
    1 and one line naming the status, or the unreachable URL, otherwise."""
    from typer.testing import CliRunner

    from worker.cli.main import app

    health = Health()
    server = serve_health(0, health, host="127.0.0.1")
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        healthy = CliRunner().invoke(app, ["health", "--url", url])
        assert healthy.exit_code == 0 and healthy.output.strip() == "healthy: ok"
        health.stale_after_s = 0.0  # the loop has not polled since: not alive
        stale = CliRunner().invoke(app, ["health", "--url", url])
        assert stale.exit_code == 1 and f"unhealthy: {url} answered 503" in stale.output
    finally:
        server.shutdown()
        server.server_close()  # the port refuses now, rather than accepting and not answering
    gone = CliRunner().invoke(app, ["health", "--url", url])
    assert gone.exit_code == 1 and f"unhealthy: {url} unreachable" in gone.output
