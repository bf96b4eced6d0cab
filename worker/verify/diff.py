"""Pure comparison of two key-sorted chunks of comparable rows.

A chunk is a list of (key, row) pairs sorted by key. Chunks with equal checksums are
equal; only a differing chunk is merged row by row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]
Row = tuple[Any, ...]


def chunk_checksum(rows: Sequence[tuple[Key, Row]]) -> bytes:
    """Order-sensitive digest of a chunk's comparable rows."""
    digest = hashlib.blake2b(digest_size=16)
    for _, row in rows:
        digest.update(repr(row).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.digest()


@dataclass
class ChunkDiff:
    matching: int = 0
    missing: list[Key] = field(default_factory=list)  # in source, not in target
    extra: list[Key] = field(default_factory=list)  # in target, not in source
    mismatched: list[tuple[Key, list[str]]] = field(default_factory=list)


def diff_chunks(
    source: Sequence[tuple[Key, Row]],
    target: Sequence[tuple[Key, Row]],
    differing_columns: Callable[[Row, Row], list[str]],
) -> ChunkDiff:
    """Merge two key-sorted chunks: matching count, missing, extra and mismatched keys."""
    result = ChunkDiff()
    if chunk_checksum(source) == chunk_checksum(target):
        result.matching = len(source)
        return result
    i = j = 0
    while i < len(source) or j < len(target):
        if j == len(target) or (i < len(source) and source[i][0] < target[j][0]):
            result.missing.append(source[i][0])
            i += 1
        elif i == len(source) or target[j][0] < source[i][0]:
            result.extra.append(target[j][0])
            j += 1
        else:
            columns = differing_columns(source[i][1], target[j][1])
            if columns:
                result.mismatched.append((source[i][0], columns))
            else:
                result.matching += 1
            i += 1
            j += 1
    return result
