"""`verify --fix`: repair through the normal apply path, never by writing MySQL directly.

Missing and mismatched keys get their current source row re-emitted as an upsert, extra
keys a delete, all with `origin: "fix"` and the time the source was read as `ts_ms`; the
consumers then apply them under the usual rules. A row re-inserted after its delete, even
at an equal version, is repaired that way (a fix read after the delete beats its
tombstone). A target row *newer* than the source's cannot be repaired this way (the guard
keeps it): a second verify still reports it, for a person to look at.
"""

from __future__ import annotations

import time
from typing import Protocol

from worker.verify.readers import SourceChunks
from worker.verify.runner import TableReport


class FixEmitter(Protocol):
    def upsert(
        self,
        table: str,
        row: dict[str, object],
        *,
        origin: str | None = None,
        ts_ms: int | None = None,
    ) -> None: ...

    def delete(
        self, table: str, key: dict[str, object], before: None = None, *, origin: str | None = None
    ) -> None: ...


def emit_fixes(report: TableReport, source: SourceChunks, emitter: FixEmitter) -> int:
    """Re-emit what `report` found different; returns the number of events emitted."""
    pk = source.table.primary_key
    emitted = 0
    to_upsert = [*report.missing_keys, *report.mismatched_keys]
    read_ms = time.time_ns() // 1_000_000  # when the source held these rows (see supersedes)
    for row in source.by_keys(to_upsert):
        emitter.upsert(source.table.name, row, origin="fix", ts_ms=read_ms)
        emitted += 1
    for key in report.extra_keys:
        emitter.delete(source.table.name, dict(zip(pk, key, strict=True)), origin="fix")
        emitted += 1
    return emitted
