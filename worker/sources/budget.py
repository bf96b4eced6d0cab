"""A sliding-window request budget: at most `limit` requests in any `window` seconds, paced.

Cloudflare allows 1,200 API requests per 5 minutes per account, shared by everything that
uses the account's tokens; the default leaves headroom for the rest.

A window alone lets a busy worker (the D1 sink under steady writes) spend the whole budget
in its first minute and then stall for the rest of the window: minutes of lag. So requests
are also paced by a token bucket: `burst` requests (a tenth of the limit by default) may go
at once, then tokens come back at `(limit - burst) / window` per second, so no window can
hold more than `limit` and the window itself never has to stop anyone. The stall becomes a
short wait per request (1/rate: 0.33 s at the default 1,000 per 5 minutes), and a caller
that waits gathers more work per request (the consume loop batches what arrived meanwhile).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

DEFAULT_LIMIT = 1000
DEFAULT_WINDOW_S = 300.0


class RequestBudget:
    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        burst: int | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self.burst = min(limit, burst if burst is not None else max(1, limit // 10))
        # Tokens per second; a limit of one burst (tiny limits) refills at limit / window.
        self.rate = max(limit - self.burst, 1) / window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._tokens = float(self.burst)
        self._filled_at: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until one more request fits the window; return how long it waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if self._filled_at is not None:
                    self._tokens = min(
                        float(self.burst), self._tokens + (now - self._filled_at) * self.rate
                    )
                self._filled_at = now
                pause = 0.0
                if len(self._sent) >= self.limit:
                    pause = self._sent[0] + self.window - now
                if self._tokens < 1.0:
                    pause = max(pause, (1.0 - self._tokens) / self.rate)
                if pause <= 0:
                    self._tokens -= 1.0
                    self._sent.append(now)
                    return waited
                self._sleep(pause)
                waited += pause
