"""consumers.subscription: each direction reads its own topics, and "caught up" counts them."""

from __future__ import annotations

import re

import pytest

from consumers.subscription import (
    check_table_names,
    subscribed_topics,
    subscription,
    topic_pattern,
)
from worker.errors import ConfigError

TOPICS = ["p.user", "p.limit", "p._dlq", "p.reverse.user", "p.reverse.limit", "q.user", "px.user"]


def test_forward_pattern_never_matches_a_reverse_topic_or_the_dlq() -> None:
    assert subscribed_topics("p", "mysql", None, TOPICS) == ["p.limit", "p.user"]


def test_reverse_pattern_matches_only_reverse_topics() -> None:
    assert subscribed_topics("p", "d1", None, TOPICS) == ["p.reverse.limit", "p.reverse.user"]


def test_a_forward_table_named_reverse_stays_forward() -> None:
    """`p.reverse` is the forward topic of a table `reverse`, not a reverse topic."""
    assert re.match(topic_pattern("p", "mysql"), "p.reverse")
    assert not re.match(topic_pattern("p", "d1"), "p.reverse")


def test_named_tables_subscribe_to_their_direction_s_topics() -> None:
    assert subscription("p", "mysql", ["user"]) == ["p.user"]
    assert subscription("p", "d1", ["user"]) == ["p.reverse.user"]
    assert subscribed_topics("p", "d1", ["user"], TOPICS) == ["p.reverse.user"]


def test_forward_patterns_refuse_dotted_table_names_unless_named() -> None:
    with pytest.raises(ConfigError, match=r"a\.b"):
        check_table_names(["a.b", "user"], "mysql", None)
    check_table_names(["a.b"], "mysql", ["a.b"])
    check_table_names(["a.b"], "d1", None)
