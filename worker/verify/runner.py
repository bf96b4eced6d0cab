"""Verify one table: stream both sides in key order, chunk by chunk, then re-check the
differences after a settle delay so rows that changed mid-run count as "in flight".

Memory is bounded by the chunk size plus the (capped) list of differing keys.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from worker.errors import ConversionError
from worker.schema.mapping import TableMapping
from worker.sources.base import Source
from worker.verify.checksum import Checksum, SourceRenderer, TargetChecksums
from worker.verify.diff import ChunkDiff, Key, Row, diff_chunks
from worker.verify.normalize import RowComparer
from worker.verify.readers import SourceChunks, TargetChunks

SAMPLE_LIMIT = 5
RECHECK_LIMIT = 10_000


class Unconvertible(tuple[str]):
    """A source row the consumer could not convert, holding only the reason: its own type
    keeps it from comparing equal to a target row by chance."""

    @property
    def reason(self) -> str:
        return self[0]


@dataclass
class TableReport:
    table: str
    processed: int = 0
    matching: int = 0
    mismatched: int = 0
    missing: int = 0
    extra: int = 0
    in_flight: int = 0
    samples: dict[str, list[Any]] = field(default_factory=dict)
    error: str | None = None
    # Every differing key after the re-check (capped at RECHECK_LIMIT), for --fix.
    missing_keys: list[Key] = field(default_factory=list, repr=False)
    mismatched_keys: list[Key] = field(default_factory=list, repr=False)
    extra_keys: list[Key] = field(default_factory=list, repr=False)
    # Which side is the truth: "target" means missing/extra are rows absent from/only in D1.
    truth: str = "source"

    @property
    def clean(self) -> bool:
        return self.error is None and not (self.mismatched or self.missing or self.extra)

    def with_target_as_truth(self) -> TableReport:
        """The same comparison seen from MySQL (`verify --reverse`, after cut-over): missing
        = rows MySQL has and D1 lacks, extra = rows only D1 has."""
        names = {"missing_in_target": "extra_in_d1", "extra_in_target": "missing_in_d1"}
        return dataclasses.replace(
            self,
            missing=self.extra,
            extra=self.missing,
            missing_keys=self.extra_keys,
            extra_keys=self.missing_keys,
            samples={names.get(k, k): v for k, v in self.samples.items()},
            truth="target",
        )

    def as_dict(self) -> dict[str, Any]:
        missing, extra = (
            ("missing_in_d1", "extra_in_d1")
            if self.truth == "target"
            else ("missing_in_target", "extra_in_target")
        )
        return {
            "table": self.table,
            "processed": self.processed,
            "matching": self.matching,
            "mismatched": self.mismatched,
            missing: self.missing,
            extra: self.extra,
            "in_flight": self.in_flight,
            "samples": self.samples,
            "error": self.error,
        }


class TableVerifier:
    def __init__(
        self,
        comparer: RowComparer,
        source: SourceChunks,
        target: TargetChunks,
        *,
        chunk_rows: int = 5000,
        settle_seconds: float = 2.0,
        on_progress: Callable[[int], None] | None = None,
        checksums: tuple[SourceRenderer, TargetChecksums] | None = None,
    ) -> None:
        self.comparer = comparer
        self.source = source
        self.target = target
        self.chunk_rows = chunk_rows
        self.settle_seconds = settle_seconds
        self.on_progress = on_progress or (lambda _n: None)
        # Without checksums every chunk is read in full from both sides (the slow path).
        self.checksums = checksums
        self.chunks = 0
        self.diffed_chunks = 0  # chunks read in full (checksums off, or they differed)

    # -- reading -------------------------------------------------------------------------

    def _source_side(self, raw: list[dict[str, Any]]) -> list[tuple[Key, Row]]:
        rows = []
        for row in raw:
            try:
                normalized = self.comparer.from_source(row)
                rows.append((self.comparer.key_of(normalized), normalized))
            except ConversionError as exc:
                key_dict = self.comparer.key_dict_of(row)
                rows.append((tuple(key_dict.values()), Unconvertible((str(exc),))))
        rows.sort(key=lambda kr: kr[0])
        return rows

    def _target_side(self, raw: list[tuple[Any, ...]]) -> list[tuple[Key, Row]]:
        rows = []
        for values in raw:
            normalized = self.comparer.normalize(values)
            rows.append((self.comparer.key_of(normalized), normalized))
        rows.sort(key=lambda kr: kr[0])
        return rows

    def _differing_columns(self, source: Row, target: Row) -> list[str]:
        if isinstance(source, Unconvertible):
            return [f"(source row not convertible: {source.reason})"]
        return self.comparer.differing_columns(source, target)

    # -- the pass --------------------------------------------------------------------------

    def run(self) -> TableReport:
        report = TableReport(self.comparer.table.name)
        first_pass = ChunkDiff()
        overflow = {"missing": 0, "extra": 0, "mismatched": 0}
        if self.checksums is None:
            last: Key | None = None
            while True:
                last, rows = self._diff_chunk(last, first_pass, overflow, report)
                self.on_progress(rows)
                if last is None:
                    break
        else:
            self._run_checksums(first_pass, overflow, report)
        self._recheck(first_pass, report)
        # Beyond the re-check cap, differences are reported as found, without a second look.
        report.missing += overflow["missing"]
        report.extra += overflow["extra"]
        report.mismatched += overflow["mismatched"]
        return report

    def _bounds(self, low: Key | None, high: Key | None) -> tuple[Key | None, Key | None]:
        return _target_bound(self.comparer, low), _target_bound(self.comparer, high)

    def _run_checksums(
        self, total: ChunkDiff, overflow: dict[str, int], report: TableReport
    ) -> None:
        """Checksum chunk after chunk; MySQL works on chunk N while SQLite renders N+1.

        The target's checksum is a query (the GIL is free while it runs), so it overlaps
        with the source's rendering. Only a chunk whose checksums differ is read in full.
        """
        assert self.checksums is not None
        renderer, target_sums = self.checksums
        pending: tuple[Key | None, Key | None, Checksum, Future[Checksum]] | None = None
        low: Key | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-target") as pool:
            while True:
                self.chunks += 1
                last_raw, source_sum = renderer.after(low, self.chunk_rows)
                high = tuple(last_raw) if source_sum.rows == self.chunk_rows else None
                future = pool.submit(target_sums.between, *self._bounds(low, high))
                if pending is not None:
                    self._settle(*pending, total, overflow, report)
                pending = (low, high, source_sum, future)
                if high is None:
                    break
                low = high
            self._settle(*pending, total, overflow, report)

    def _settle(
        self,
        low: Key | None,
        high: Key | None,
        source_sum: Checksum,
        target_sum: Future[Checksum],
        total: ChunkDiff,
        overflow: dict[str, int],
        report: TableReport,
    ) -> None:
        if target_sum.result() == source_sum:
            total.matching += source_sum.rows
            report.processed += source_sum.rows
            self.on_progress(source_sum.rows)
        else:
            # Exactly the checksummed range (low, high]: rows written since must neither
            # push part of it out of the diff nor pull the next chunk's rows in.
            raw = self.source.after(low, None, upto=high)
            self.on_progress(self._diff_range(low, high, raw, total, overflow, report))

    def _diff_chunk(
        self, low: Key | None, total: ChunkDiff, overflow: dict[str, int], report: TableReport
    ) -> tuple[Key | None, int]:
        """Read the chunk after `low` from both sides and diff it row by row."""
        raw = self.source.after(low, self.chunk_rows)
        exhausted = len(raw) < self.chunk_rows
        high = None if exhausted else tuple(raw[-1][k] for k in self.comparer.table.primary_key)
        return high, self._diff_range(low, high, raw, total, overflow, report)

    def _diff_range(
        self,
        low: Key | None,
        high: Key | None,
        raw: list[dict[str, Any]],
        total: ChunkDiff,
        overflow: dict[str, int],
        report: TableReport,
    ) -> int:
        """Diff the source rows `raw` of the key range (low, high] against the target's."""
        self.diffed_chunks += 1
        source = self._source_side(raw)
        target = self._target_side(self.target.between(*self._bounds(low, high)))
        chunk = diff_chunks(source, target, self._differing_columns)
        _merge(total, chunk, overflow)
        report.processed += len(source) + len(chunk.extra)
        return len(source)

    def _recheck(self, first: ChunkDiff, report: TableReport) -> None:
        """Differences seen once are read again after `settle_seconds`; those that changed
        (or vanished) meanwhile were in flight, not errors."""
        report.matching = first.matching
        suspects = [*first.missing, *first.extra, *(k for k, _ in first.mismatched)]
        if not suspects:
            return
        if self.settle_seconds > 0:
            time.sleep(self.settle_seconds)
        source = self._source_side(self.source.by_keys(suspects))
        target = self._target_side(self.target.by_keys(suspects))
        second = diff_chunks(source, target, self._differing_columns)
        still = set(second.missing) | set(second.extra) | {k for k, _ in second.mismatched}
        before = set(first.missing) | set(first.extra) | {k for k, _ in first.mismatched}
        report.in_flight = len(before - still)
        report.matching += report.in_flight
        # Classify by the second look: it is the newer truth.
        report.missing_keys = [k for k in second.missing if k in before]
        report.extra_keys = [k for k in second.extra if k in before]
        report.mismatched_keys = [k for k, _ in second.mismatched if k in before]
        report.missing = len(report.missing_keys)
        report.extra = len(report.extra_keys)
        report.mismatched = len(report.mismatched_keys)
        if report.missing:
            report.samples["missing_in_target"] = [list(k) for k in report.missing_keys][
                :SAMPLE_LIMIT
            ]
        if report.extra:
            report.samples["extra_in_target"] = [list(k) for k in report.extra_keys][:SAMPLE_LIMIT]
        if report.mismatched:
            report.samples["mismatched"] = [
                {"key": list(k), "columns": cols} for k, cols in second.mismatched if k in before
            ][:SAMPLE_LIMIT]


def _merge(total: ChunkDiff, chunk: ChunkDiff, overflow: dict[str, int]) -> None:
    """Add a chunk's result; keys beyond RECHECK_LIMIT are only counted (memory bound)."""
    total.matching += chunk.matching
    for name in ("missing", "extra", "mismatched"):
        room = RECHECK_LIMIT - len(total.missing) - len(total.extra) - len(total.mismatched)
        found: list[Any] = getattr(chunk, name)
        getattr(total, name).extend(found[: max(room, 0)])
        overflow[name] += max(len(found) - max(room, 0), 0)


def _target_bound(comparer: RowComparer, key: Key | None) -> Key | None:
    """A source key in the target's representation (converted through the mapping)."""
    if key is None:
        return None
    try:
        return comparer.source_key(dict(zip(comparer.table.primary_key, key, strict=True)))
    except ConversionError:
        return key


def verifier_for(
    table: TableMapping,
    source: Source,
    engine: Engine,
    *,
    checksums: bool = True,
    **options: Any,
) -> TableVerifier:
    """A verifier for `table` between `source` and the target `engine` (checksums first)."""
    return TableVerifier(
        RowComparer(table),
        SourceChunks(source, table),
        TargetChunks(engine, table),
        checksums=(SourceRenderer(source, table), TargetChecksums(engine, table))
        if checksums
        else None,
        **options,
    )
