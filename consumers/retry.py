"""Which MySQL errors are retried, which isolate a poison row, and the retry policy.

MySQL error numbers (https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html):
transient ones are retried in process, briefly — well below `max.poll.interval.ms` (300 s),
so a long outage becomes the consume loop's pause/seek/probe, not a group eviction. Row
errors mean one event's values are refused: the batch is bisected to find it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pymysql
import sqlalchemy as sa
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from worker.logs import get_logger
from worker.metrics import RETRIES

log = get_logger(__name__)
T = TypeVar("T")

DEADLOCK, LOCK_WAIT = 1213, 1205
CONNECTION_LOST = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1927, 4031})
TRANSIENT = frozenset({DEADLOCK, LOCK_WAIT}) | CONNECTION_LOST
ROW_REJECTED = frozenset(
    {
        1048,  # column cannot be null
        1062,  # duplicate entry
        1264,  # out of range value
        1265,  # data truncated
        1292,  # incorrect datetime/… value
        1300,  # invalid utf8mb4 string
        1366,  # incorrect string/integer value
        1367,  # illegal … value found during parsing
        1406,  # data too long for column
        1451,  # foreign key: row is referenced
        1452,  # foreign key: parent row missing
        1690,  # value out of range
        3140,  # invalid JSON text (MySQL)
        3819,  # check constraint violated (MySQL)
        4025,  # check constraint failed (MariaDB: JSON_VALID on JSON columns)
    }
)

RETRY_BUDGET_S = 20.0
RETRY_ATTEMPTS = 8


def mysql_errno(exc: BaseException) -> int | None:
    """The server/client error number behind a SQLAlchemy or PyMySQL exception."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def mysql_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    text = str(args[1]) if len(args) > 1 else str(orig)
    return text.splitlines()[0] if text else type(orig).__name__


# SQLAlchemy wraps driver errors; statements run on the raw DBAPI cursor raise PyMySQL's.
MYSQL_ERRORS = (sa.exc.DBAPIError, pymysql.err.MySQLError)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return True
    return isinstance(exc, MYSQL_ERRORS) and mysql_errno(exc) in TRANSIENT


def is_row_rejection(exc: BaseException) -> bool:
    return isinstance(exc, MYSQL_ERRORS) and mysql_errno(exc) in ROW_REJECTED


def _before_sleep(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    RETRIES.inc()
    log.warning(
        "mysql transient error, retrying",
        attempt=state.attempt_number,
        errno=mysql_errno(exc) if exc else None,
        error=mysql_message(exc) if exc else None,
    )


def with_retries(fn: Callable[[], T], *, budget_s: float | None = None) -> T:
    """Call `fn`, retrying transient MySQL errors with exponential backoff, bounded."""
    budget = RETRY_BUDGET_S if budget_s is None else budget_s
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_delay(budget) | stop_after_attempt(RETRY_ATTEMPTS),
        wait=wait_exponential(multiplier=0.2, max=4.0),
        before_sleep=_before_sleep,
        reraise=True,
    )
    result: Any = retrying(fn)
    return result  # type: ignore[no-any-return]
