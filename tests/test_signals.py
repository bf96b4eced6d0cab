"""A stop is bounded: SIGTERM always ends the process within its deadline (issue 11, defect 4).

Before, a consumer whose broker never came back sat in a synchronous offset commit. Python
never ran its SIGTERM handler, so the process needed SIGKILL. The watchdog is woken by
the C-level signal handler, even while the main thread is blocked in C.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

BLOCKED = """
import sys, time, threading
from worker.signals import stop_on_signals
stop_on_signals(lambda: print("stop requested", flush=True), deadline_s=float(sys.argv[1]))
print("ready", flush=True)
# the main thread blocked in C, never returning to the interpreter: a lock nobody releases
lock = threading.Lock(); lock.acquire(); lock.acquire()
"""


def start(deadline: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKED, str(deadline)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_blocked_worker_exits_within_its_deadline(signum: int) -> None:
    proc = start(deadline=1.5)
    sent = time.monotonic()
    proc.send_signal(signum)
    code = proc.wait(timeout=15)
    took = time.monotonic() - sent
    assert code == 3
    assert 1.4 <= took < 5, took
    out = proc.stdout.read() + proc.stderr.read()  # type: ignore[union-attr]
    assert "stop requested" in out or signum == signal.SIGINT
    assert "stop deadline passed" in out, out


def test_a_second_signal_exits_at_once() -> None:
    proc = start(deadline=60)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 3
    assert time.monotonic() - sent < 3
