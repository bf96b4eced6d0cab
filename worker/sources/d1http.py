"""The Cloudflare D1 HTTP query API as a source.

`POST {base}/accounts/{account}/d1/database/{db}/query` with `{"sql", "params"}` answers
`{"success", "errors", "messages", "result": [{"results", "success", "meta"}]}`; with
`{"batch": [{"sql", "params"}, …]}` it runs the statements as one transaction and answers
one `result` entry per statement (the API's documented batch form). Limits that
shape this client (DESIGN.md): ≤ 100 bound parameters per query, 30 s per query, 1,200
requests per 5 minutes per account. 429 and 5xx are retried with exponential backoff
(honouring `Retry-After`); other refusals are errors naming the HTTP status and D1's reason.
The API token is sent as a bearer header and never appears in a message.

Parameters travel as JSON, which has no bytes, and D1 parses it as JavaScript does, so an
integer beyond 2^53 would silently lose its last digits. Both kinds of value are therefore
written into the statement as SQL literals instead of being bound (`X'…'` for a BLOB, the
digits for a large integer; `inline_unsafe_params`): exact, and free of injection (hex
digits and decimal digits only). A statement over D1's 100,000-byte limit is refused here
with SQLite's own "string or blob too big".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from worker.errors import ConfigError, ServiceError
from worker.sources.base import Row, check_param_count
from worker.sources.budget import RequestBudget

QUERY_TIMEOUT_S = 35.0  # D1 stops a query at 30 s; allow for the round trip
MAX_STATEMENT_BYTES = 100_000  # D1: per SQL statement
MAX_SAFE_INTEGER = 2**53 - 1  # beyond it a JSON number is not exact in JavaScript


def _needs_literal(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER


def _literal(value: Any) -> str:
    if isinstance(value, int):
        # Parenthesised when negative: `a - ?` must not become the comment `a --9…`.
        return str(value) if value >= 0 else f"({value})"
    return "X'" + bytes(value).hex() + "'"


def inline_unsafe_params(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """`sql` with each placeholder whose value JSON cannot carry exactly replaced by its
    literal, the others turned into plain `?` bound in order of occurrence.

    Placeholders follow SQLite: `?NNN` is parameter NNN, a bare `?` one more than the largest
    number so far; a parameter named twice is bound (or written out) twice. They are found
    outside quoted text and identifiers ('…', "…", `…`, […]) and `--` comments, so a `?`
    inside a name, a string or a comment is left alone. A placeholder numbered beyond the
    parameters, or parameters beyond the largest placeholder, is a ValueError."""
    values = list(params)
    if not any(_needs_literal(v) for v in values):
        return sql, values
    out: list[str] = []
    kept: list[Any] = []
    closing = {"'": "'", '"': '"', "`": "`", "[": "]"}
    quote: str | None = None
    largest, at = 0, 0
    while at < len(sql):
        char = sql[at]
        if quote is not None:
            if char == quote:
                quote = None  # a doubled quote closes and reopens: the same outcome
        elif char in closing:
            quote = closing[char]
        elif sql.startswith("--", at):
            end = sql.find("\n", at)
            end = len(sql) if end < 0 else end
            out.append(sql[at:end])
            at = end
            continue
        elif char == "?":
            end = at + 1
            while end < len(sql) and sql[end].isdigit():
                end += 1
            number = int(sql[at + 1 : end]) if end > at + 1 else largest + 1
            if not 1 <= number <= len(values):
                raise ValueError(f"placeholder ?{number} but {len(values)} parameters")
            largest = max(largest, number)
            value = values[number - 1]
            if _needs_literal(value):
                out.append(_literal(value))
            else:
                out.append("?")
                kept.append(value)
            at = end
            continue
        out.append(char)
        at += 1
    if largest != len(values):
        raise ValueError(f"{len(values)} parameters for {largest} placeholders")
    return "".join(out), kept


def _bound(sql: str, params: Sequence[Any]) -> dict[str, Any]:
    """One statement of a request, unsafe values inlined, within D1's limits per statement."""
    try:
        check_param_count(params)
        text, kept = inline_unsafe_params(sql, params)
        check_param_count(kept)  # a parameter named twice is bound twice
    except ValueError as exc:
        raise ServiceError(
            f"cannot send a statement to D1 ({exc}): {' '.join(sql.split())[:80]}"
        ) from None
    size = len(text.encode("utf-8"))
    if size > MAX_STATEMENT_BYTES:
        raise ServiceError(
            f"string or blob too big: the statement is {size} bytes with its BLOB values "
            f"written out, over D1's {MAX_STATEMENT_BYTES}-byte limit per statement"
        )
    return {"sql": text, "params": kept}


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class D1HttpSource:
    def __init__(
        self,
        account_id: str,
        database_id: str,
        api_token: str,
        api_base: str = "https://api.cloudflare.com/client/v4",
        *,
        budget: RequestBudget | None = None,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        for setting, value in (
            ("D1CDC_D1_ACCOUNT_ID", account_id),
            ("D1CDC_D1_DATABASE_ID", database_id),
            ("D1CDC_D1_API_TOKEN", api_token),
        ):
            if not value:
                raise ConfigError(f"source=d1http needs {setting}")
        self.name = f"d1:{database_id}"
        self.url = f"{api_base.rstrip('/')}/accounts/{account_id}/d1/database/{database_id}/query"
        self.budget = budget or RequestBudget()
        self.requests = 0
        self.retries = 0
        self._client = client or httpx.Client(timeout=QUERY_TIMEOUT_S)
        self._client.headers["Authorization"] = f"Bearer {api_token}"
        exponential = wait_exponential_jitter(
            multiplier=backoff_initial, max=60, jitter=backoff_initial
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = exc.retry_after if isinstance(exc, _Retryable) else None
            return max(exponential(state), hinted or 0.0)

        self._post = retry(
            retry=retry_if_exception_type(_Retryable),
            wait=wait,
            stop=stop_after_attempt(max_attempts),
            before_sleep=self._count_retry,
            reraise=True,
        )(self._post_once)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            body = self._post(_bound(sql, params))
        except _Retryable as exc:
            raise ServiceError(f"D1 API ({self.name}) kept failing: {exc}") from None
        results = body["result"][0]["results"]
        return [{k: _from_json(v) for k, v in r.items()} for r in results]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one writing statement (one request: D1 runs each in its own transaction);
        the number of rows changed, from D1's `meta.changes`."""
        try:
            body = self._post(_bound(sql, params))
        except _Retryable as exc:
            raise ServiceError(f"D1 API ({self.name}) kept failing: {exc}") from None
        meta = body["result"][0].get("meta") or {}
        return int(meta.get("changes", 0))

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run `statements` in ONE request, as one transaction (D1's `batch()`: all or
        nothing); the rows changed by each, from D1's `meta.changes`. A retried batch may
        have committed already: callers send only statements that are safe to repeat."""
        if not statements:
            return []
        payload = {"batch": [_bound(sql, params) for sql, params in statements]}
        try:
            body = self._post(payload)
        except _Retryable as exc:
            raise ServiceError(f"D1 API ({self.name}) kept failing: {exc}") from None
        return [int((r.get("meta") or {}).get("changes", 0)) for r in body["result"]]

    def close(self) -> None:
        self._client.close()

    def _count_retry(self, _state: RetryCallState) -> None:
        self.retries += 1

    def _post_once(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.budget.acquire()
        self.requests += 1
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise ServiceError(
                f"D1 API ({self.name}) answered HTTP {response.status_code} with non-JSON"
            ) from None
        if response.status_code != 200 or not body.get("success"):
            raise ServiceError(
                f"D1 API ({self.name}) refused the query (HTTP {response.status_code}): "
                f"{_first_error(body)}"
            )
        return body


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def _first_error(body: dict[str, Any]) -> str:
    errors = body.get("errors") or []
    if errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", errors[0]))
    return "no reason given"


def _from_json(value: Any) -> Any:
    # D1 returns BLOB values as arrays of byte values.
    if isinstance(value, list):
        return bytes(value)
    return value
