"""One exception hierarchy for every error a user can meet.

Each error says what happened, to what (setting, table, key, column, offset) and, where
useful, what to do. The CLI turns any `D1cdcError` into one line on stderr and a non-zero
exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class D1cdcError(Exception):
    """Base of every error d1cdc raises on purpose."""

    exit_code = 2


class ConfigError(D1cdcError):
    """A setting is missing or invalid; the message names the setting."""


class ServiceError(D1cdcError):
    """A service (Kafka, MySQL, the source) cannot be reached or refused a request."""


class SchemaError(D1cdcError):
    """The mapping file or the source schema is invalid or inconsistent."""


class EventError(D1cdcError):
    """An event cannot be processed; it belongs in the dead-letter topic, with `reason`."""

    @property
    def reason(self) -> str:
        return str(self)


class EnvelopeError(EventError):
    """An event is not a valid v1 envelope (bad JSON, missing field, wrong type)."""


class UnshippableError(EventError):
    """A change a producer cannot make a Kafka event of. It carries what to dead-letter
    (topic, key, value), so a poller that must not stop at one row can store it and go on."""

    def __init__(self, message: str, *, topic: str, key: bytes, value: bytes) -> None:
        super().__init__(message)
        self.topic, self.key, self.value = topic, key, value


class EventTooLargeError(UnshippableError):
    """An event is bigger than the topics and producers take (`worker.kafka.MAX_EVENT_BYTES`);
    the value is the encoded event."""


class UnconvertibleRowError(UnshippableError):
    """A MySQL row the reverse pipeline cannot turn back into D1's representation (a BOOLEAN
    holding 2, written by raw SQL); the value is the row as JSON, values as text."""


class UnknownTableError(EventError):
    """An event names a table the mapping does not have."""


class ConversionError(EventError):
    """A source value does not fit its column's logical type.

    Never a silent default or truncation: the message names table, column, key and the
    offending value's type.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str = "?",
        column: str = "?",
        key: Any = None,
        value: Any = None,
    ) -> None:
        self.table = table
        self.column = column
        self.key = key
        self.value_type = type(value).__name__
        where = f"{table}.{column}"
        if key is not None:
            where += f" key={key}"
        super().__init__(f"{where}: {message} (got {self.value_type})")


class RowRefusedError(EventError):
    """The target refused an event's row for a reason retrying will not fix (MySQL with its
    errno, or D1 after cut-over); the message names table, key, the database's reason and
    what to do."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class UniqueCollisionError(EventError):
    """A row's secondary UNIQUE value still belongs to another key's row after the retry
    time (the write freeing it never came): applying it would overwrite that row."""


def reason_of(error: EventError) -> str:
    """The one shape of a dead letter's reason, whoever writes it: the cause's class, then
    what it says (table, key, what happened, what to do) — `EnvelopeError: …`,
    `ConversionError: …`, `RowRefusedError: …`, `UniqueCollisionError: …`,
    `EventTooLargeError: …`, `UnconvertibleRowError: …`."""
    return f"{type(error).__name__}: {' '.join(error.reason.split())}"
