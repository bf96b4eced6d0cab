"""A small local stand-in for the Cloudflare D1 HTTP query API, serving an SQLite file.

It speaks the documented request/response shape — `POST /accounts/{a}/d1/database/{d}/query`
with `{"sql", "params"}` → `{"success", "errors", "messages", "result": [{"results",
"success", "meta"}]}`, or `{"batch": [{"sql", "params"}, …]}` run as one transaction (all or
nothing) with one `result` entry per statement — enforces the bearer token and D1's
100-parameter limit per statement, returns
BLOBs as arrays of byte values like D1 does, and can be told to fail the next requests
(e.g. 429) to exercise the client's retries. `foreign_keys=True` enforces foreign keys as
D1 always does (`PRAGMA foreign_keys = on`; an SQLite file opened by sqlite3 does not).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PATH = re.compile(r"^/client/v4/accounts/([^/]+)/d1/database/([^/]+)/query$")


class D1ApiServer(ThreadingHTTPServer):
    def __init__(
        self, db_path: Path, token: str, account: str, database: str, *, foreign_keys: bool = False
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.db_path = db_path
        self.foreign_keys = foreign_keys
        self.token = token
        self.account = account
        self.database = database
        self.fail_next: list[int] = []  # HTTP statuses to answer with before serving again
        self.queries: list[tuple[str, list[Any]]] = []  # every statement, batched or not
        self.requests = 0  # HTTP requests served (a batch is one)
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/client/v4"


def _result(results: list[dict[str, Any]], changes: int) -> dict[str, Any]:
    return {
        "results": [
            {k: list(v) if isinstance(v, bytes) else v for k, v in row.items()} for row in results
        ],
        "success": True,
        "meta": {"rows_read": len(results), "changes": changes},
    }


def _envelope(result: list[dict[str, Any]] | None, errors: list[dict[str, Any]]) -> bytes:
    body = {"success": not errors, "errors": errors, "messages": [], "result": result or []}
    return json.dumps(body).encode("utf-8")


def _run(
    db_path: Path, statements: list[tuple[str, list[Any]]], *, foreign_keys: bool
) -> list[dict[str, Any]]:
    """Every statement in one transaction; raises sqlite3.Error after rolling back."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    if foreign_keys:
        conn.execute("PRAGMA foreign_keys = on")
    try:
        conn.execute("BEGIN IMMEDIATE")
        out = []
        for sql, params in statements:
            before = conn.total_changes
            rows = [dict(r) for r in conn.execute(sql, params).fetchall()]
            # D1's meta.changes counts trigger rows too
            out.append(_result(rows, conn.total_changes - before))
        conn.execute("COMMIT")
        return out
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: D1ApiServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet in test output
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        match = _PATH.match(self.path)
        if not match or match.groups() != (self.server.account, self.server.database):
            self._answer(404, _envelope(None, [{"code": 7404, "message": "database not found"}]))
            return
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._answer(401, _envelope(None, [{"code": 10000, "message": "Authentication error"}]))
            return
        if "batch" in payload:
            statements = [(q["sql"], q.get("params", [])) for q in payload["batch"]]
        else:
            statements = [(payload["sql"], payload.get("params", []))]
        with self.server.lock:
            failure = self.server.fail_next.pop(0) if self.server.fail_next else None
            self.server.requests += 1
            self.server.queries.extend(statements)
        if failure is not None:
            error = [{"code": 971, "message": "Please wait and consider throttling"}]
            self._answer(failure, _envelope(None, error), {"Retry-After": "0"})
            return
        if any(len(params) > 100 for _sql, params in statements):
            error = [{"code": 7500, "message": "too many SQL variables"}]
            self._answer(400, _envelope(None, error))
            return
        try:
            result = _run(self.server.db_path, statements, foreign_keys=self.server.foreign_keys)
        except sqlite3.Error as exc:
            self._answer(400, _envelope(None, [{"code": 7500, "message": str(exc)}]))
            return
        self._answer(200, _envelope(result, []))


@contextmanager
def serve_d1_api(
    db_path: Path,
    token: str = "test-token",
    account: str = "acct",
    database: str = "db1",
    *,
    foreign_keys: bool = False,
) -> Iterator[D1ApiServer]:
    server = D1ApiServer(db_path, token, account, database, foreign_keys=foreign_keys)
    # A short poll interval: shutdown() waits for the serving loop's next poll (0.5 s each).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
