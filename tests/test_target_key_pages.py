"""The delete diff reads the target's keys in keyset pages (PlanetScale caps a result at 100k)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from producers.deletes import target_keys
from tests.edge_mapping import edge_mapping
from worker.db import create_target_engine
from worker.schema.ddl import apply_mapping

pytestmark = pytest.mark.integration


def test_composite_keys_are_read_completely_page_by_page(target_url: str) -> None:
    """25 composite keys, with a quote, a backslash and keys differing only by case or a
    trailing space, read 7 at a time: every key once, none lost at a page boundary."""
    mapping = edge_mapping()
    engine = create_target_engine(target_url)
    try:
        apply_mapping(engine, mapping)
        keys = {
            (f"k{i % 5}{suffix}", 2**62 + i)
            for i in range(5)
            for suffix in ("", " ", "'\\", "K", "k")
        }
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO `order` (`key`, `select`, `isActive`, `updatedAt`, "
                    "`updateCounter`) VALUES (:k, :s, 1, '2025-01-01', 1)"
                ),
                [{"k": k, "s": s} for k, s in keys],
            )
        statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert target_keys(engine, mapping.tables["order"], page=7) == keys
        assert sum("LIMIT 7" in s for s in statements) == 4  # 7 + 7 + 7 + 4
        assert target_keys(engine, mapping.tables["limit"], page=7) == set()
    finally:
        engine.dispose()
