"""Verify runs recorded in the target, so `status` can require a recent clean verify."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.verify.runner import TableReport

RUNS_TABLE = "_d1cdc_verify_runs"
_CREATE = f"""
CREATE TABLE IF NOT EXISTS `{RUNS_TABLE}` (
  `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `finished_at` DATETIME(3) NOT NULL,
  `clean` BOOLEAN NOT NULL,
  `tables` INT NOT NULL,
  `differences` BIGINT NOT NULL,
  `report` LONGTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


@dataclass(frozen=True)
class VerifyRun:
    finished_at: datetime
    clean: bool
    tables: int
    differences: int


def record_run(engine: Engine, reports: list[TableReport]) -> VerifyRun:
    differences = sum(r.missing + r.extra + r.mismatched for r in reports)
    run = VerifyRun(
        finished_at=datetime.now(UTC).replace(tzinfo=None),
        clean=all(r.clean for r in reports),
        tables=len(reports),
        differences=differences,
    )
    with engine.begin() as conn:
        conn.execute(sa.text(_CREATE))
        conn.execute(
            sa.text(
                f"INSERT INTO `{RUNS_TABLE}` (finished_at, clean, tables, differences, report) "
                "VALUES (:finished_at, :clean, :tables, :differences, :report)"
            ),
            {
                "finished_at": run.finished_at,
                "clean": run.clean,
                "tables": run.tables,
                "differences": run.differences,
                "report": json.dumps([r.as_dict() for r in reports], default=str),
            },
        )
    return run


def last_run(engine: Engine) -> VerifyRun | None:
    """The newest recorded run; a read, so no DDL (status polls it): no table, no run."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(RUNS_TABLE):
            return None
        row = conn.execute(
            sa.text(
                f"SELECT finished_at, clean, tables, differences FROM `{RUNS_TABLE}` "
                "ORDER BY id DESC LIMIT 1"
            )
        ).first()
    if row is None:
        return None
    return VerifyRun(row[0], bool(row[1]), int(row[2]), int(row[3]))
