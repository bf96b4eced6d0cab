"""verify streams: peak memory stays bounded however large the table is."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from worker.config import Settings
from worker.db import create_target_engine
from worker.schema.ddl import apply_mapping
from worker.schema.mapping import load_mapping

pytestmark = pytest.mark.integration

ROWS = 60_000
WIDTH = 2_000  # characters per row: 120 MB of text on each side
PEAK_RSS_LIMIT_MB = 160  # measured ~102 MB; holding one side whole would need ~200 MB
MAPPING = """
[tables.blob_table]
primary_key = ["id"]
[tables.blob_table.columns.id]
type = "string(12)"
nullable = false
[tables.blob_table.columns.body]
type = "text"
"""

# Runs the CLI in-process, then reports this process's own peak RSS in kB. VmHWM, not
# getrusage(): ru_maxrss survives exec, so it would include the forking pytest process.
MEASURE = """
import sys
from worker.cli.main import run
sys.argv = ["d1cdc", *sys.argv[1:]]
try:
    run()
finally:
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("peak_rss_kb", hwm, file=sys.stderr)
"""


def body(i: int) -> str:
    return chr(65 + i % 26) * WIDTH


def test_verify_of_a_large_table_stays_within_a_memory_bound(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """120 MB per side, compared row by row (checksums off): peak RSS under the bound."""
    source = tmp_path / "big.sqlite"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE blob_table (id text PRIMARY KEY, body text)")
    conn.executemany(
        "INSERT INTO blob_table VALUES (?, ?)", ((f"k{i:08d}", body(i)) for i in range(ROWS))
    )
    conn.commit()
    conn.close()
    (tmp_path / "mapping.toml").write_text(MAPPING)
    settings = make_settings(source_path=source)
    engine = create_target_engine(settings.target_url.get_secret_value())
    apply_mapping(engine, load_mapping(settings.mapping_path))
    insert = sa.text("INSERT INTO blob_table (id, body) VALUES (:id, :body)")
    for start in range(0, ROWS, 2000):
        with engine.begin() as db:
            db.execute(
                insert, [{"id": f"k{i:08d}", "body": body(i)} for i in range(start, start + 2000)]
            )
    engine.dispose()
    env = {
        **os.environ,
        "D1CDC_TARGET_URL": settings.target_url.get_secret_value(),
        "D1CDC_SOURCE_PATH": str(source),
        "D1CDC_MAPPING_PATH": str(settings.mapping_path),
        "D1CDC_LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-c", MEASURE, "verify", "--json", "--no-checksums"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"matching": 60000' in result.stdout
    peak_kb = int(result.stderr.rsplit("peak_rss_kb", 1)[1].split()[0])
    print(f"verify peak RSS {peak_kb / 1024:.0f} MB")
    assert peak_kb / 1024 < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_kb / 1024:.0f} MB"
