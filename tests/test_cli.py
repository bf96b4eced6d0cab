"""The command line: help, version, one-line errors, no secret in any output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from worker import __version__

SECRET = "pw-must-not-leak-9137"
SECRET_URL = f"mysql+pymysql://d1cdc:{SECRET}@127.0.0.1:1/nowhere"


def d1cdc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_help_lists_the_commands() -> None:
    """`d1cdc --help` explains the tool and lists doctor."""
    result = d1cdc("--help")
    assert result.returncode == 0
    assert "doctor" in result.stdout
    assert "D1" in result.stdout


def test_version_prints_the_package_version() -> None:
    """`d1cdc --version` prints the installed version."""
    result = d1cdc("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"d1cdc {__version__}"


def test_broken_setting_exits_nonzero_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong D1CDC_* value: exit 2, one line on stderr naming it, no traceback."""
    import os

    env = {**os.environ, "D1CDC_BATCH_SIZE": "many"}
    result = d1cdc("doctor", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "D1CDC_BATCH_SIZE" in lines[0]
    assert "Traceback" not in result.stderr


def test_password_never_appears_in_doctor_output_or_logs(tmp_path: object) -> None:
    """doctor against an unreachable target with a password: the password is never printed."""
    import os

    env = {
        **os.environ,
        "D1CDC_TARGET_URL": SECRET_URL,
        "D1CDC_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "D1CDC_LOG_LEVEL": "debug",
        "D1CDC_LOG_FORMAT": "json",
    }
    result = d1cdc("doctor", env=env)
    assert result.returncode == 1
    assert "FAIL target" in result.stdout
    assert "d1cdc:***@127.0.0.1:1" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_password_never_appears_in_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """--help of every command, with a secret URL in the environment, never shows it."""
    import os

    env = {**os.environ, "D1CDC_TARGET_URL": SECRET_URL}
    top = d1cdc("--help", env=env)
    listing = top.stdout.split("Commands:", 1)[1]
    commands = [
        line.split()[0]
        for line in listing.splitlines()
        if line.startswith("  ") and not line.startswith("   ") and line.split()
    ]
    assert "doctor" in commands
    for command in commands:
        result = d1cdc(command, "--help", env=env)
        assert SECRET not in result.stdout + result.stderr, command


def test_logs_redact_url_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    """A log line carrying a URL with a password is rendered with *** instead."""
    from worker.logs import configure_logging, get_logger

    configure_logging("json", "info")
    get_logger("test").info("connecting", url=SECRET_URL)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert SECRET not in line
    assert json.loads(line)["url"] == "mysql+pymysql://d1cdc:***@127.0.0.1:1/nowhere"
