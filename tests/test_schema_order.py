"""Specification of worker.schema.order: dependency levels from foreign keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.schema.order import dependency_levels


def test_level_is_one_more_than_the_highest_referenced_level() -> None:
    """A table referencing level 0 and level 1 tables is at level 2."""
    report = dependency_levels(
        {"user": [], "plan": [], "team": ["plan"], "membership": ["user", "team"]}
    )
    assert report.levels == {"user": 0, "plan": 0, "team": 1, "membership": 2}
    assert report.by_level() == [["plan", "user"], ["team"], ["membership"]]


def test_self_reference_is_ignored_and_reported() -> None:
    """A parentId pointing at its own table does not raise the level."""
    report = dependency_levels({"comment": ["comment", "user"], "user": []})
    assert report.levels == {"comment": 1, "user": 0}
    assert report.self_references == ["comment"]
    assert "comment: self-reference ignored" in report.notes()


def test_cycle_is_broken_deterministically_and_reported() -> None:
    """a -> b -> a: the alphabetically first table drops its in-cycle reference."""
    report = dependency_levels({"b": ["a"], "a": ["b"], "c": ["a"]})
    assert report.broken_edges == [("a", "b")]
    assert report.levels == {"a": 0, "b": 1, "c": 1}
    again = dependency_levels({"a": ["b"], "c": ["a"], "b": ["a"]})
    assert again.levels == report.levels and again.broken_edges == report.broken_edges


def test_reference_to_a_table_not_replicated_is_reported_not_fatal() -> None:
    """An FK into an excluded table cannot order anything; it is listed."""
    report = dependency_levels({"team": ["billing_account"]})
    assert report.levels == {"team": 0}
    assert report.unknown_references == [("team", "billing_account")]


NAMES = [f"t{i}" for i in range(8)]


@given(st.dictionaries(st.sampled_from(NAMES), st.lists(st.sampled_from(NAMES), max_size=4)))
def test_every_kept_reference_points_to_a_lower_level(graph: dict[str, list[str]]) -> None:
    """Whatever the graph (cycles included), every table gets a level, and each reference
    that was not dropped goes from a higher level to a strictly lower one."""
    report = dependency_levels(graph)
    assert set(report.levels) == set(graph)
    dropped = set(report.broken_edges)
    for table, refs in graph.items():
        for ref in refs:
            if ref in graph and ref != table and (table, ref) not in dropped:
                assert report.levels[table] > report.levels[ref]


@given(st.lists(st.lists(st.integers(0, 7), max_size=3), min_size=8, max_size=8))
def test_acyclic_graphs_drop_nothing(raw: list[list[int]]) -> None:
    """When every table only references tables with a smaller index, no edge is dropped."""
    graph = {f"t{i}": [f"t{j}" for j in refs if j < i] for i, refs in enumerate(raw)}
    assert dependency_levels(graph).broken_edges == []
