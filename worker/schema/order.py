"""Dependency levels from foreign keys: which tables can be loaded before which.

Level 0 tables reference nothing; a table's level is 1 + the highest level among the
tables it references. This is the order of the seed's Appendix (§10) and the order in
which `schema apply` creates tables and a rebuild may load them.

A self-reference (a `parentId` pointing at its own table) does not constrain the order and
is only reported. A cycle between tables has no valid order: it is broken deterministically
(the alphabetically first table of the cycle drops its references into the cycle) and the
dropped edges are reported, so a person can see exactly what was ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field


@dataclass
class OrderReport:
    levels: dict[str, int] = field(default_factory=dict)
    self_references: list[str] = field(default_factory=list)
    broken_edges: list[tuple[str, str]] = field(default_factory=list)  # (table, referenced)
    unknown_references: list[tuple[str, str]] = field(default_factory=list)

    def by_level(self) -> list[list[str]]:
        """Tables grouped by level, each group sorted by name."""
        if not self.levels:
            return []
        groups: list[list[str]] = [[] for _ in range(max(self.levels.values()) + 1)]
        for name, level in self.levels.items():
            groups[level].append(name)
        return [sorted(group) for group in groups]

    def notes(self) -> list[str]:
        """One human-readable line per thing that was ignored or broken."""
        lines = [f"{t}: self-reference ignored" for t in self.self_references]
        lines += [f"{t} -> {r}: reference dropped to break a cycle" for t, r in self.broken_edges]
        lines += [
            f"{t} -> {r}: referenced table is not replicated" for t, r in self.unknown_references
        ]
        return lines


def _reachable(start: str, deps: MappingABC[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(deps[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(deps[node])
    return seen


def _break_one_cycle(pending: dict[str, set[str]], report: OrderReport) -> None:
    """Drop the in-cycle references of the first table of a bottom strongly connected set."""
    deps = {t: d & pending.keys() for t, d in pending.items()}
    reach = {t: _reachable(t, deps) for t in deps}
    cyclic = sorted(t for t in deps if t in reach[t])
    for table in cyclic:
        component = {u for u in reach[table] if table in reach[u]}
        # A bottom component depends on nothing unresolved outside itself, so after breaking
        # it, its tables get levels right away; breaking elsewhere would drop needless edges.
        if all(reach[u] <= component for u in component):
            for ref in sorted(deps[table] & component):
                report.broken_edges.append((table, ref))
            pending[table] -= component
            return
    raise AssertionError("no cycle found although no table was ready")  # unreachable


def dependency_levels(references: MappingABC[str, Iterable[str]]) -> OrderReport:
    """Levels for every table in `references` (table → tables its foreign keys point to)."""
    report = OrderReport()
    deps: dict[str, set[str]] = {}
    for table in sorted(references):
        deps[table] = set()
        for ref in sorted(set(references[table])):
            if ref == table:
                report.self_references.append(table)
            elif ref not in references:
                report.unknown_references.append((table, ref))
            else:
                deps[table].add(ref)
    original = {t: set(d) for t, d in deps.items()}
    pending = dict(deps)
    while pending:
        ready = sorted(t for t, d in pending.items() if d <= report.levels.keys())
        if not ready:
            _break_one_cycle(pending, report)
            continue
        for table in ready:
            refs = original[table] & report.levels.keys()
            report.levels[table] = 1 + max((report.levels[r] for r in refs), default=-1)
            del pending[table]
    return report
