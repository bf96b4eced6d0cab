"""A bounded on-disk spool for events Kafka could not take, replayed in order later.

Why: an application must not lose a write because the broker is briefly unreachable, and
must not block forever either. Events whose delivery failed are appended here (JSON lines,
one file per segment, fsync once per appended batch), and the emitter replays the whole
spool, oldest first, before any new event once Kafka answers again. A restarted app finds
the spool on disk and replays it at start, so a restart loses nothing that was spooled.

Bounded: when the spool would grow past `max_bytes`, `append` raises `SpoolFullError`
rather than dropping anything; the application decides (fail the request, alert).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.errors import ServiceError

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SEGMENT_BYTES = 8 * 1024 * 1024
_SUFFIX = ".jsonl"


class SpoolFullError(ServiceError):
    """Kafka is unreachable and the spool has reached its size limit."""


@dataclass(frozen=True)
class SpooledMessage:
    """One Kafka message as it would have been produced (value None = tombstone)."""

    topic: str
    key: bytes
    value: bytes | None

    def to_line(self) -> str:
        # Keys and values are UTF-8 JSON (the envelope), so they travel as text.
        value = None if self.value is None else self.value.decode("utf-8")
        body = {"topic": self.topic, "key": self.key.decode("utf-8"), "value": value}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n"

    @classmethod
    def from_line(cls, line: str) -> SpooledMessage:
        body = json.loads(line)
        value = body["value"]
        return cls(body["topic"], body["key"].encode("utf-8"), _encode_optional(value))


def _encode_optional(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8")


class Spool:
    """Append-only JSONL segments in `directory`; `clear()` after a successful replay."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_SUFFIX}"))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def is_empty(self) -> bool:
        return not any(p.stat().st_size for p in self.segments())

    def append(self, messages: Sequence[SpooledMessage]) -> None:
        """Write `messages` durably (one fsync), or raise `SpoolFullError` writing nothing."""
        if not messages:
            return
        data = "".join(m.to_line() for m in messages).encode("utf-8")
        used = self.size_bytes()
        if used + len(data) > self.max_bytes:
            raise SpoolFullError(
                f"Kafka is unreachable and the spool {self.directory} is full "
                f"({used} of {self.max_bytes} bytes); {len(messages)} event(s) not accepted — "
                "restore the broker or raise the spool limit"
            )
        segment = self._current_segment(len(data))
        with segment.open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> Iterator[SpooledMessage]:
        """Every spooled message, oldest first. A torn last line (crash mid-write) is skipped."""
        for segment in self.segments():
            with segment.open("r", encoding="utf-8") as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        break  # the process died mid-append; that batch was never acknowledged
                    yield SpooledMessage.from_line(line)

    def clear(self) -> None:
        """Remove every segment (call only once all of them were delivered)."""
        for segment in self.segments():
            segment.unlink()

    def _drop_torn_tail(self) -> None:
        """Truncate a half-written last line left by a crash, so later appends stay parseable."""
        existing = self.segments()
        if not existing:
            return
        data = existing[-1].read_bytes()
        if data and not data.endswith(b"\n"):
            with existing[-1].open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def _current_segment(self, incoming: int) -> Path:
        existing = self.segments()
        if existing and existing[-1].stat().st_size + incoming <= SEGMENT_BYTES:
            return existing[-1]
        number = int(existing[-1].stem) + 1 if existing else 1
        return self.directory / f"{number:012d}{_SUFFIX}"
