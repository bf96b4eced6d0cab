"""Which topics a consume loop reads, per direction, and which count for "caught up". Pure.

Forward (`consume --into mysql`): the table topics `{prefix}.{table}`. Reverse (`--into
d1`, after cut-over): `{prefix}.reverse.{table}` (`worker.topics.reverse_topic_for`). A
forward consumer must never read a reverse topic: it would write MySQL's own changes back
into MySQL, and a reverse consumer never a forward one (D1's own writes back into D1).

librdkafka's regular expressions have no lookahead, so the forward pattern excludes by
shape: one name after the prefix, not starting with `_` (`{prefix}._dlq`) and without a
further dot (`{prefix}.reverse.users`). A subscription pattern starts with `^`; the same
pattern, through Python's `re`, picks the topics whose lag decides "caught up", so the two
cannot disagree. A mapped table whose name contains a dot cannot be told apart from a
reverse topic: the forward direction refuses it unless the tables are named (`--tables`,
explicit topic names need no pattern).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from worker.errors import ConfigError
from worker.topics import reverse_topic_for, topic_for

Into = Literal["mysql", "d1"]


def topic_pattern(prefix: str, into: Into) -> str:
    """The regex subscription of every table topic of the direction (prefixes are
    `[A-Za-z0-9_-]+`: literal characters in both librdkafka's and Python's syntax)."""
    if into == "d1":
        return f"^{prefix}\\.reverse\\..+$"
    return f"^{prefix}\\.[^_.][^.]*$"


def subscription(prefix: str, into: Into, tables: Sequence[str] | None) -> list[str]:
    """What the consumer subscribes to: the named tables' topics, or the pattern."""
    if tables:
        topic = reverse_topic_for if into == "d1" else topic_for
        return [topic(prefix, t) for t in tables]
    return [topic_pattern(prefix, into)]


def subscribed_topics(
    prefix: str, into: Into, tables: Sequence[str] | None, existing: Iterable[str]
) -> list[str]:
    """The topics of `subscription` among `existing` ones: what "caught up" counts."""
    wanted = subscription(prefix, into, tables)
    if tables:
        return wanted
    pattern = re.compile(wanted[0])
    return sorted(name for name in existing if pattern.match(name))


def check_table_names(table_names: Iterable[str], into: Into, tables: Sequence[str] | None) -> None:
    """Raise `ConfigError` for a mapped table the forward pattern would never match."""
    if into == "d1" or tables:
        return
    dotted = sorted(name for name in table_names if "." in name)
    if dotted:
        raise ConfigError(
            f"table names with a dot cannot be told apart from reverse topics: {dotted}; "
            "name the tables to consume with --tables"
        )
