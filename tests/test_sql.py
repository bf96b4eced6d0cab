"""SQL building: quoting, the version guard's shape, and the multi-row rewrite form."""

from __future__ import annotations

from pymysql.cursors import RE_INSERT_VALUES

from consumers.sql import build_delete, build_unique_lookup, build_upsert, stored_is_newer
from worker.schema.ddl import quote_mysql
from worker.schema.mapping import mapping_from_dict

LIMIT = mapping_from_dict(
    {
        "tables": {
            "limit": {
                "primary_key": ["id"],
                "version_columns": ["updatedAt", "counter"],
                "columns": {
                    "id": {"type": "string(20)"},
                    "value`x": {"type": "text"},
                    "plan": {"type": "text"},
                    "counter": {"type": "bigint"},
                    "updatedAt": {"type": "timestamp_ms"},
                },
            }
        }
    }
).table("limit")


def test_identifiers_are_quoted_including_embedded_backticks() -> None:
    """Reserved words and backticks in names cannot break out of the identifier."""
    assert quote_mysql("limit") == "`limit`"
    assert quote_mysql("a`b") == "`a``b`"
    assert "INSERT INTO `limit` (`id`, `value``x`, `plan`" in build_upsert(LIMIT)


def test_upsert_has_the_form_pymysql_rewrites_into_one_multi_row_insert() -> None:
    """executemany only batches `INSERT … VALUES (%s, …) ON DUPLICATE …` statements."""
    match = RE_INSERT_VALUES.match(build_upsert(LIMIT))
    assert match is not None
    assert match.group(3).strip().startswith("ON DUPLICATE KEY UPDATE")


def test_version_columns_are_assigned_last_least_significant_first() -> None:
    """Guards read the stored version before it changes; the most significant goes last."""
    updates = build_upsert(LIMIT).split("ON DUPLICATE KEY UPDATE ", 1)[1]
    order = [name for name in ("`value``x` =", "`plan` =", "`counter` =", "`updatedAt` =")]
    positions = [updates.index(name) for name in order]
    assert positions == sorted(positions)
    assert "`id` =" not in updates  # the key is never reassigned


def test_unversioned_upsert_is_a_plain_overwrite() -> None:
    """Without version columns the planner decides; the SQL just writes."""
    table = mapping_from_dict(
        {"tables": {"t": {"primary_key": ["id"], "columns": {"id": {"type": "text"}}}}}
    ).table("t")
    assert build_upsert(table).endswith("ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)")


def test_guarded_delete_compares_the_stored_version_with_named_parameters() -> None:
    """Delete applies only if the stored version is not newer than the delete's."""
    sql = build_delete(LIMIT, guarded=True)
    assert sql.startswith("DELETE FROM `limit` WHERE `id` = %(k0)s AND NOT (")
    assert "%(v0)s" in sql and "%(v1)s" in sql
    assert "NOT" not in build_delete(LIMIT, guarded=False)


def test_stored_is_newer_is_lexicographic_over_columns() -> None:
    """Column i decides only when all earlier columns are equal (NULL-safe)."""
    sql = stored_is_newer(["s0", "s1"], ["i0", "i1"])
    assert sql == (
        "((s0 IS NOT NULL AND (i0 IS NULL OR s0 > i0)) OR "
        "s0 <=> i0 AND (s1 IS NOT NULL AND (i1 IS NULL OR s1 > i1)))"
    )


def test_unique_lookup_uses_row_constructors_for_composite_indexes() -> None:
    """One query per index and chunk; composite indexes match tuples."""
    assert build_unique_lookup(LIMIT, ["plan"], 2).endswith("WHERE `plan` IN (%s, %s)")
    assert "(`plan`, `counter`) IN ((%s, %s), (%s, %s))" in build_unique_lookup(
        LIMIT, ["plan", "counter"], 2
    )
