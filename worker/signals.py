"""SIGTERM/SIGINT ask a worker to stop: finish the batch in flight, commit, leave the group.

A handler only sets the stop flag; the loop notices it between batches (arq's worker does
the same), so a signal never interrupts a MySQL transaction or an offset commit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from worker.logs import get_logger

log = get_logger(__name__)


def stop_on_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Call `stop` on SIGTERM/SIGINT; returns the function restoring the previous handlers.

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

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
