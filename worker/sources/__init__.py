"""Where rows are read from: an SQLite file (default) or the D1 HTTP API, one interface."""

from __future__ import annotations

from worker.config import Settings
from worker.sources.base import Source, WritableSource
from worker.sources.sqlite import SqliteSource

__all__ = ["Source", "SqliteSource", "WritableSource", "open_source"]


def open_source(settings: Settings, *, writable: bool = False) -> WritableSource:
    """The configured source. `writable` opens an SQLite file read-write (D1's API always
    is); only capture and the relay ask for it."""
    if settings.source == "d1http":
        # Imported here: a process that never calls D1's API (a consumer into MySQL) does
        # not load httpx (1-3 MB resident, measured with and without the test extras).
        from worker.sources.budget import RequestBudget
        from worker.sources.d1http import D1HttpSource

        return D1HttpSource(
            settings.d1_account_id,
            settings.d1_database_id,
            settings.d1_api_token.get_secret_value(),
            settings.d1_api_base,
            budget=RequestBudget(settings.d1_requests_per_5min),
        )
    return SqliteSource(settings.source_path, writable=writable)
