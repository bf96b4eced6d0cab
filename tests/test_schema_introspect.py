"""Specification of worker.schema.introspect: what is read from an SQLite source file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from worker.errors import SchemaError
from worker.schema.introspect import (
    SourceForeignKey,
    introspect,
    introspect_file,
    is_selected,
    max_text_length,
    open_readonly,
    sample_values,
)

SCHEMA = r'''
CREATE TABLE "user" (
  id text PRIMARY KEY NOT NULL,
  email text NOT NULL,
  createdAt integer DEFAULT CURRENT_TIMESTAMP,
  "weird ""name""" text
);
CREATE UNIQUE INDEX user_email_unique ON "user" (email);
CREATE TABLE "limit" (
  teamId text NOT NULL REFERENCES "user"(id),
  name text NOT NULL,
  value integer DEFAULT 0,
  PRIMARY KEY (name, teamId)
);
CREATE INDEX limit_value_idx ON "limit" (value);
CREATE INDEX limit_expr_idx ON "limit" (lower(name));
CREATE TABLE d1_migrations (id integer PRIMARY KEY, name text);
CREATE TABLE _cf_KV (key text PRIMARY KEY, value blob);
CREATE TABLE __drizzle_migrations (id integer PRIMARY KEY, hash text);
'''


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT INTO user VALUES ('usr_1', 'zoë@example.com', 1700000000, NULL), "
        "('usr_2', '😀@example.com', '2024-01-01 00:00:00', 'x')"
    )
    conn.commit()
    conn.close()
    return path


def test_internal_tables_are_skipped_by_default(source: Path) -> None:
    """sqlite_*, _cf_*, d1_migrations and __drizzle_migrations are not application data."""
    assert [t.name for t in introspect_file(source)] == ["limit", "user"]


def test_include_and_exclude_lists_are_globs_and_exclude_wins() -> None:
    """include narrows, exclude removes, internal tables stay out unless asked for."""
    assert is_selected("team_role", include=["team_*"])
    assert not is_selected("user", include=["team_*"])
    assert not is_selected("team_role", include=["team_*"], exclude=["*_role"])
    assert not is_selected("_cf_KV")
    assert is_selected("_cf_KV", skip_internal=False)


def test_columns_keep_declared_type_notnull_default_and_pk_order(source: Path) -> None:
    """Composite PK order follows the PRIMARY KEY clause, not column order."""
    with open_readonly(source) as conn:
        tables = {t.name: t for t in introspect(conn)}
    user, limit = tables["user"], tables["limit"]
    created = user.column("createdAt")
    assert (created.declared_type.lower(), created.not_null, created.default) == (
        "integer",
        False,
        "CURRENT_TIMESTAMP",
    )
    assert user.column("email").not_null
    assert user.column('weird "name"').declared_type.lower() == "text"
    assert limit.primary_key == ("name", "teamId")


def test_unique_plain_indexes_and_foreign_keys_are_read(source: Path) -> None:
    """Unique and plain column indexes are kept; expression indexes are skipped."""
    tables = {t.name: t for t in introspect_file(source)}
    user_indexes = {i.name: i for i in tables["user"].indexes}
    assert user_indexes["user_email_unique"].unique
    assert user_indexes["user_email_unique"].columns == ("email",)
    limit_indexes = {i.name for i in tables["limit"].indexes}
    assert "limit_value_idx" in limit_indexes and "limit_expr_idx" not in limit_indexes
    assert tables["limit"].foreign_keys == (SourceForeignKey(("teamId",), "user", ("id",)),)


def test_samples_report_storage_class_per_value(source: Path) -> None:
    """Mixed storage classes in one column are visible through typeof()."""
    with open_readonly(source) as conn:
        samples = sample_values(conn, "user", "createdAt", 10)
        longest = max_text_length(conn, "user", "email")
    assert sorted(kind for kind, _ in samples) == ["integer", "text"]
    assert longest == len("zoë@example.com")


def test_source_is_opened_read_only(source: Path) -> None:
    """A write through the introspection connection fails."""
    with open_readonly(source) as conn, pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM user")


def test_missing_source_file_is_a_schema_error(tmp_path: Path) -> None:
    """The error names the file and the setting."""
    with pytest.raises(SchemaError, match="D1CDC_SOURCE_PATH"):
        introspect_file(tmp_path / "nope.sqlite")
