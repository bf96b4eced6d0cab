"""Consecutive slices of a sequence: statements per transaction, rows per statement, keys
per bound-parameter budget. One definition for every side (it used to live with the
MySQL sink's row-versions table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
