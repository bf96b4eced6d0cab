"""SIGTERM/SIGINT ask a worker to stop: finish the batch in flight, commit, leave the group.

A handler only sets the stop flag; the loop notices it between batches (arq's worker does
the same), so a signal never interrupts a MySQL transaction or an offset commit.

A stop is bounded by `deadline_s`. Python runs signal handlers only between bytecodes, so
a main thread blocked in C (a synchronous offset commit waiting for a broker that is gone)
would never even see the signal. So the C-level handler's wakeup byte
(`signal.set_wakeup_fd`) wakes a watchdog thread at once. If the worker has not stopped
when the deadline passes, the watchdog exits the process with status 3. A second signal
exits at once. Nothing is lost that way: uncommitted offsets are delivered again (P5).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from worker.logs import get_logger

log = get_logger(__name__)


EXIT_DEADLINE = 3  # the process status when a stop ran past its deadline


def stop_on_signals(
    stop: Callable[[], None], *, deadline_s: float | None = None
) -> Callable[[], None]:
    """Call `stop` on SIGTERM/SIGINT; returns the function restoring the previous handlers.

    With `deadline_s`, the process exits (status 3) that many seconds after the first
    signal if it has not stopped by then, and at once on a second signal.
    Only the main thread may install signal handlers: elsewhere (tests, an embedding
    application) this does nothing and the caller stops the loop itself.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received; finishing the current batch", signal=signum)
        stop()

    for sig in previous:
        signal.signal(sig, handler)
    undo_watchdog = _watchdog(deadline_s) if deadline_s is not None else (lambda: None)

    def restore() -> None:
        undo_watchdog()
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _watchdog(deadline_s: float) -> Callable[[], None]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()

    def watch() -> None:
        signals = 0
        while not done.is_set():
            try:
                data = os.read(read_fd, 16)
            except OSError:
                return
            if not data or done.is_set():
                return
            signals += len(data)
            if signals >= 2:
                _exit_now("a second signal")
            threading.Thread(target=expire, daemon=True, name="d1cdc-stop-deadline").start()

    def expire() -> None:
        if not done.wait(deadline_s):
            _exit_now(f"the {deadline_s:g} s stop deadline passed")

    threading.Thread(target=watch, daemon=True, name="d1cdc-signal-watchdog").start()

    def undo() -> None:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        for fd in (write_fd, read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    return undo


def _exit_now(why: str) -> None:
    log.error(
        "worker did not stop in time; exiting (uncommitted work is delivered again)",
        reason=why,
    )
    for stream in (sys.stdout, sys.stderr):  # os._exit skips the interpreter's flush
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(EXIT_DEADLINE)
