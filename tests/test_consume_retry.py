"""Retry policy: transient MySQL errors are retried (bounded); row errors never are."""

from __future__ import annotations

import pymysql
import pytest

from consumers import retry


def _failing(errors: list[Exception]) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "done"

    return calls, fn


def test_deadlock_and_lost_connection_are_retried_until_success() -> None:
    """1213 and 2013 are transient: the call is repeated and its result returned."""
    errors: list[Exception] = [
        pymysql.err.OperationalError(1213, "Deadlock found"),
        pymysql.err.OperationalError(2013, "Lost connection"),
    ]
    calls, fn = _failing(errors)
    assert retry.with_retries(fn, budget_s=5) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3


def test_row_errors_are_not_retried() -> None:
    """1406 (data too long) will fail again: raise at once, for bisection."""
    calls, fn = _failing([pymysql.err.DataError(1406, "Data too long")])
    with pytest.raises(pymysql.err.DataError):
        retry.with_retries(fn, budget_s=5)  # type: ignore[arg-type]
    assert len(calls) == 1
    assert retry.is_row_rejection(pymysql.err.DataError(1406, "x"))


def test_retries_stop_at_the_budget() -> None:
    """A server that stays away raises after the bounded budget, not never."""
    calls, fn = _failing([pymysql.err.OperationalError(2003, "refused")] * 50)
    with pytest.raises(pymysql.err.OperationalError):
        retry.with_retries(fn, budget_s=0.5)  # type: ignore[arg-type]
    assert 1 < len(calls) <= retry.RETRY_ATTEMPTS
