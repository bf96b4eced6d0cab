"""What every command needs from the global options: settings and logging, set up once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from worker.config import Settings, load_settings
from worker.logs import configure_logging, register_secret


@dataclass
class GlobalOptions:
    config_file: Path | None
    log_format: str | None
    log_level: str | None


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Load settings (flags given as `overrides` win), then configure logging from them."""
    opts: GlobalOptions = ctx.find_root().obj
    settings = load_settings(
        opts.config_file, log_format=opts.log_format, log_level=opts.log_level, **overrides
    )
    configure_logging(settings.log_format, settings.log_level)
    token = settings.d1_api_token.get_secret_value()
    if token:
        register_secret(token)
    return settings


def table_names(entries: list[str] | str | None) -> list[str]:
    """`--tables` as given: repeated and/or comma-separated names, blanks dropped."""
    given = [entries] if isinstance(entries, str) else entries or []
    return [name.strip() for entry in given for name in entry.split(",") if name.strip()]
