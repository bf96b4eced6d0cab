"""Test helper: the TypeScript Worker app (producers/worker_app) in workerd, via Miniflare.

`ops/worker_app.sh setup` installs its npm packages from the committed lockfile and builds
it; `Harness` starts `harness.mjs` (real workerd, D1 in a plain SQLite file) and reads its
ready line; `run_load` drives the app's routes with `load.mjs`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "producers" / "worker_app"
MAPPING = APP / "d1cdc.mapping.toml"
MIGRATIONS = APP / "migrations"
CAPTURE_MIGRATION = MIGRATIONS / "0001_d1cdc_capture.sql"


def setup_app() -> None:
    """npm ci (skipped when current) + build; skip locally without Node, fail in CI."""
    if shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("CI: node is not installed (the Worker tests need Node 20)")
        pytest.skip("node is not installed")
    result = subprocess.run(
        ["bash", str(REPO / "ops" / "worker_app.sh"), "setup"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@dataclass(frozen=True)
class Running:
    url: str
    d1_file: Path
    d1_api: str  # the D1 HTTP query API, answered by workerd's own D1

    def d1_env(self) -> dict[str, str]:
        """Settings that point d1cdc's D1 HTTP source at this app's database."""
        return {
            "D1CDC_SOURCE": "d1http",
            "D1CDC_D1_ACCOUNT_ID": "local",
            "D1CDC_D1_DATABASE_ID": "local",
            "D1CDC_D1_API_TOKEN": "local",
            "D1CDC_D1_API_BASE": self.d1_api,
            "D1CDC_D1_REQUESTS_PER_5MIN": "1000000",
        }

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, self.url + path, json=body, timeout=30)
        return response.status_code, response.json()


@contextmanager
def harness(persist: Path, migrations: Path = MIGRATIONS) -> Iterator[Running]:
    proc = subprocess.Popen(
        ["node", "harness.mjs", "--persist", str(persist), "--migrations", str(migrations)],
        cwd=APP,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"harness exited: {proc.wait(30)} {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        ready = json.loads(line)
        yield Running(ready["url"], Path(ready["d1_file"]), ready["d1_api"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_load(url: str, rate: int, seconds: float, seed: int = 1) -> dict[str, Any]:
    result = subprocess.run(
        [
            "node",
            "load.mjs",
            "--url",
            url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--seed",
            str(seed),
        ],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    stats: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0 and stats["errors"] == 0, (stats, result.stderr[-2000:])
    return stats


def drizzle_columns() -> dict[str, dict[str, dict[str, Any]]]:
    """The Drizzle schema's declared columns (scripts/columns.ts), by SQL name."""
    result = subprocess.run(
        ["node", "--import", "tsx", "scripts/columns.ts"],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    columns: dict[str, dict[str, dict[str, Any]]] = json.loads(result.stdout)
    return columns
