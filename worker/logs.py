"""Logging: one structlog pipeline for d1cdc, librdkafka and SQLAlchemy.

JSON lines when stderr is not a terminal (containers, CI), readable console output on a
terminal. The standard library's loggers (SQLAlchemy, and librdkafka through
confluent-kafka's `logger` setting) are rendered by the same processors via
`ProcessorFormatter`, so every line has one shape. A redaction processor masks URL
passwords and registered secrets wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` in every later log line (for tokens that are not in a URL)."""
    if len(value) >= 4:
        _SECRETS.add(value)


def redact_text(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no password or token survives into a rendered line."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Set up structlog and route the standard library's logging through it."""
    json_lines = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if json_lines else _noop,
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # SQLAlchemy's engine log is per-statement; only warnings unless debugging.
    logging.getLogger("sqlalchemy").setLevel("INFO" if level == "debug" else "WARNING")
    logging.getLogger("httpx").setLevel("INFO" if level == "debug" else "WARNING")


def _noop(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict


def kafka_logger() -> logging.Logger:
    """The stdlib logger handed to confluent-kafka (`logger` config) for librdkafka's logs."""
    return logging.getLogger("librdkafka")


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
