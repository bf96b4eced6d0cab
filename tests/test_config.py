"""Settings: env vars and TOML load, a wrong value names its setting, secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import load_settings, redact_url
from worker.errors import ConfigError

SECRET_URL = "mysql+pymysql://app:s3cr3t-pa55@db.example.com:3306/app"


def test_env_var_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`D1CDC_BATCH_SIZE` sets `batch_size`."""
    monkeypatch.setenv("D1CDC_BATCH_SIZE", "1234")
    assert load_settings().batch_size == 1234


def test_toml_file_is_read_and_env_wins_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TOML file supplies settings; an environment variable beats the file."""
    config = tmp_path / "d1cdc.toml"
    config.write_text('topic_prefix = "fromfile"\nbatch_size = 77\n')
    monkeypatch.setenv("D1CDC_BATCH_SIZE", "88")
    settings = load_settings(config)
    assert settings.topic_prefix == "fromfile"
    assert settings.batch_size == 88


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("D1CDC_BATCH_SIZE", "lots", "D1CDC_BATCH_SIZE"),
        ("D1CDC_BATCH_SIZE", "0", "D1CDC_BATCH_SIZE"),
        ("D1CDC_KAFKA_BOOTSTRAP", "localhost", "D1CDC_KAFKA_BOOTSTRAP"),
        ("D1CDC_TARGET_URL", "postgresql://u:p@h/db", "D1CDC_TARGET_URL"),
        ("D1CDC_SOURCE", "mongodb", "D1CDC_SOURCE"),
        ("D1CDC_TOPIC_PREFIX", "has space", "D1CDC_TOPIC_PREFIX"),
    ],
)
def test_invalid_setting_error_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    """A wrong value raises ConfigError whose one-line message names the variable."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert named in message
    assert "\n" not in message


def test_unknown_key_in_toml_is_rejected(tmp_path: Path) -> None:
    """A typo in the config file is an error, not a silently ignored key."""
    config = tmp_path / "d1cdc.toml"
    config.write_text("batch_sise = 10\n")
    with pytest.raises(ConfigError, match="BATCH_SISE"):
        load_settings(config)


def test_missing_and_malformed_config_files_are_errors(tmp_path: Path) -> None:
    """A config path that does not exist or is not TOML is named in the error."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_password_is_absent_from_repr_and_validation_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The target URL is a secret: repr and a later validation error never show it."""
    monkeypatch.setenv("D1CDC_TARGET_URL", SECRET_URL)
    settings = load_settings()
    assert "s3cr3t-pa55" not in repr(settings)
    assert "s3cr3t-pa55" not in settings.target_url_redacted()
    monkeypatch.setenv("D1CDC_BATCH_SIZE", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "s3cr3t-pa55" not in str(info.value)


def test_redact_url_masks_only_the_password() -> None:
    """User, host and database stay readable; the password becomes ***."""
    assert redact_url(SECRET_URL) == "mysql+pymysql://app:***@db.example.com:3306/app"
    assert redact_url("mysql+pymysql://app@h/db") == "mysql+pymysql://app@h/db"


def test_backfill_and_consume_options_are_settings_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every option is reachable by flag, D1CDC_* variable or TOML (issue 10 item 5)."""
    from worker.cli.backfill import backfill_options

    monkeypatch.setenv("D1CDC_BACKFILL_CHUNK", "77")
    monkeypatch.setenv("D1CDC_BACKFILL_DETECT_DELETES", "false")
    monkeypatch.setenv("D1CDC_CONSUMER_SESSION_TIMEOUT_MS", "10000")
    settings = load_settings(None, backfill_lookback_s=5.0)
    options = backfill_options(settings)
    assert (options.chunk, options.detect_deletes, options.lookback_s) == (77, False, 5.0)
    assert settings.consumer_session_timeout_ms == 10_000
    with pytest.raises(ConfigError, match="D1CDC_CONSUMER_SESSION_TIMEOUT_MS"):
        load_settings(None, consumer_session_timeout_ms=10)
