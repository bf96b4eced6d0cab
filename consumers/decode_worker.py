"""Decode and convert batches in child processes, beside the consume loop.

Why: one consume process is bound by one core of Python CPU — about 21 µs per event in the
polling thread (envelope JSON, validation, conversion: ~15 of them) and 10 µs in the
applier thread (SQL literals, MySQL), serialized by the GIL (measured with py-spy and
/proc per-thread CPU, ops/bench/bench_apply.py). With `decode_processes` ≥ 1 the decoding
runs in that many child processes on other cores; the loop only unpickles the results
(~1.3 µs per event), so its own core is left to the applier.

Contract: `DecodeWorkers.decode(sources)` returns what `decode_batch(sources, mapping)`
returns — the same changes (carrying the caller's own `Source` objects) and dead letters
with the same reasons, in the same order (property-tested). A batch is split into
contiguous parts, one per process, and put back together in order. Should a child die
(killed, out of memory), that batch is decoded in this process and the children are
restarted: nothing is lost or reordered. Children ignore SIGINT/SIGTERM: the loop decides
when to stop, and shuts them down after its last batch.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from consumers.change import Change, DeadLetter, Source
from consumers.decode import DecodedBatch, decode_batch, to_change
from worker.errors import EventError
from worker.gc_tuning import tune_for_long_running_worker
from worker.logs import get_logger
from worker.schema.mapping import Mapping

log = get_logger(__name__)

# What a child sends back per message: None (a compaction tombstone, skipped), a str (the
# dead-letter reason) or the fields of a `Change` except its source.
_Result = tuple[Any, ...] | str | None

_mapping: Mapping | None = None  # set in each child by `_start_child`


def _start_child(mapping: Mapping) -> None:
    global _mapping
    _mapping = mapping
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_for_long_running_worker()


def _ready() -> bool:
    return _mapping is not None


def _decode_part(messages: list[tuple[str, bytes | None]]) -> list[_Result]:
    """In a child: `decode_batch`'s decisions for (topic, value) pairs, in order."""
    assert _mapping is not None, "child not initialised"
    results: list[_Result] = []
    for topic, value in messages:
        if value is None:
            results.append(None)
            continue
        try:
            change = to_change(Source(topic, 0, 0, None, value), _mapping)
        except EventError as exc:
            results.append(f"{type(exc).__name__}: {exc.reason}")
            continue
        c = change
        results.append((c.table, c.op, c.key, c.row, c.version, c.ts_ms, c.version_values))
    return results


class DecodeWorkers:
    def __init__(self, mapping: Mapping, processes: int) -> None:
        if processes < 1:
            raise ValueError("DecodeWorkers needs at least one process")
        self.mapping = mapping
        self.processes = processes
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        """Start the children and wait until each has imported and loaded the mapping (about
        a second), so that this happens at start-up and not in the first batch."""
        pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded process
            initializer=_start_child,
            initargs=(self.mapping,),
        )
        for future in [pool.submit(_ready) for _ in range(self.processes)]:
            future.result()
        log.info("decode processes ready", processes=self.processes)
        return pool

    def decode(self, sources: Sequence[Source]) -> DecodedBatch:
        """`decode_batch(sources, mapping)`, computed in the child processes."""
        if not sources:
            return DecodedBatch()
        size = -(-len(sources) // self.processes)  # ceil: contiguous parts, in order
        parts = [sources[i : i + size] for i in range(0, len(sources), size)]
        try:
            futures = [
                self._pool.submit(_decode_part, [(s.topic, s.value) for s in part])
                for part in parts
            ]
            results = [result for future in futures for result in future.result()]
        except BrokenProcessPool as exc:
            log.warning(
                "decode process died; decoding this batch here, restarting it", error=str(exc)
            )
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return decode_batch(sources, self.mapping)
        batch = DecodedBatch()
        for source, result in zip(sources, results, strict=True):
            if result is None:
                batch.skipped += 1
            elif isinstance(result, str):
                batch.dead.append(DeadLetter(source, result))
            else:
                table, op, key, row, version, ts_ms, values = result
                batch.changes.append(Change(table, op, key, row, version, ts_ms, source, values))
        return batch

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
