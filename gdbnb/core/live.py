"""Realtime ``map``: the events a subscribed query emits as the graph changes (pure).

The reference (GenosSRV engine, 0.25) re-runs the whole query after each (debounced) batch of
changes and diffs the new result list against the previous one by id: walking the new results
in order it emits ``added`` for a new id and ``updated`` for an id whose timestamp or edges
changed, then ``removed`` (value null, the old edges and timestamp) for each id that left, in
the old order. Nothing is emitted when the results only moved. We do the same for windowed
(``$limit``/``$after``/``$before``) and ``$edge`` queries; for the others a change can only
affect its own node, so each change is tested alone (fast path, same events; within one batch
they come in change order rather than result order).
"""

from __future__ import annotations

from typing import Any, Mapping

from .graph import Change
from .node import Node
from .query import CompiledQuery, compile_query, run_map

__all__ = ["LiveQuery"]

Event = dict[str, Any]


def _event(node: Node, action: str) -> Event:
    ev = node.to_dict()
    if action == "removed":
        ev["value"] = None
    ev["action"] = action
    return ev


def _changed(a: Node, b: Node) -> bool:
    return a.timestamp != b.timestamp or a.edges != b.edges


class LiveQuery:
    """One realtime subscription over ``nodes`` (the live graph mapping, read on each call)."""

    def __init__(
        self,
        nodes: Mapping[str, Node],
        query: dict[str, Any] | CompiledQuery | None = None,
        field: str | None = None,
        order: str = "asc",
        limit: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> None:
        self._nodes = nodes
        self._query = query if isinstance(query, CompiledQuery) else compile_query(query)
        self._opts: dict[str, Any] = {"field": field, "order": order, "limit": limit, "after": after, "before": before}
        self._rerun = bool(limit or after or before or self._query.uses_edges)
        self._results = run_map(nodes, self._query, **self._opts)
        # id -> Node currently in the result (the fast path's whole state)
        self._current: dict[str, Node] = {n.id: n for n in self._results}

    @property
    def results(self) -> list[Node]:
        """The result list at subscription time (the fast path does not keep it sorted)."""
        return self._results

    def initial(self) -> list[Event]:
        """One ``initial`` event per result, in result order."""
        return [_event(n, "initial") for n in self._results]

    def on_changes(self, changes: list[Change]) -> list[Event]:
        """Events for one applied batch of graph changes (the graph already holds them)."""
        if not changes:
            return []
        if self._rerun:
            return self._diff()
        events: list[Event] = []
        removed: list[Event] = []
        cur, nodes, query = self._current, self._nodes, self._query
        # like the reference, compare each touched node's state before and after the batch
        for nid in dict.fromkeys(ch.id for ch in changes):
            old, new = cur.get(nid), nodes.get(nid)
            if new is not None and query.matches(new, nodes):
                cur[nid] = new
                if old is None:
                    events.append(_event(new, "added"))
                elif _changed(old, new):
                    events.append(_event(new, "updated"))
            elif old is not None:
                del cur[nid]
                removed.append(_event(old, "removed"))
        return events + removed

    def _diff(self) -> list[Event]:
        new = run_map(self._nodes, self._query, **self._opts)
        old = self._current
        events: list[Event] = []
        fresh: dict[str, Node] = {}
        for n in new:
            fresh[n.id] = n
            prev = old.get(n.id)
            if prev is None:
                events.append(_event(n, "added"))
            elif _changed(prev, n):
                events.append(_event(n, "updated"))
        events += [_event(n, "removed") for i, n in old.items() if i not in fresh]
        self._results, self._current = new, fresh
        return events
