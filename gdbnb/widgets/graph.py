"""GraphView: the room's nodes and edges drawn with a force layout (force-graph, vendored)."""

from __future__ import annotations

from typing import Any

import traitlets

from ..core.live import LiveQuery
from ..core.node import MISSING, Node
from ..core.query import compile_query
from ..errors import QueryError
from ._base import LiveWidget
from ._bundle import css, esm

__all__ = ["GraphView", "node_summary"]

_LABEL_KEYS = ("name", "title", "label", "text")
_GROUP_KEYS = ("type", "kind", "group", "category")


def node_summary(node: Node | dict[str, Any]) -> dict[str, Any]:
    """What the graph front end needs of a node: ``{id, label, group, edges}`` (no value)."""
    if isinstance(node, Node):
        nid, value, edges = node.id, node.value, node.edges
    else:
        nid, value, edges = node["id"], node.get("value"), node.get("edges") or []
    label = group = None
    if isinstance(value, dict):
        label = next((value[k] for k in _LABEL_KEYS if isinstance(value.get(k), (str, int, float))), None)
        group = next((value[k] for k in _GROUP_KEYS if isinstance(value.get(k), (str, int, float))), None)
    elif value is not MISSING and isinstance(value, (str, int, float)):
        label = value
    return {"id": nid, "label": str(label) if label is not None else nid,
            "group": str(group) if group is not None else "", "edges": list(edges)}


class GraphView(LiveWidget):
    """Nodes and edges of ``db`` (or of the nodes a ``map`` query selects), updating live.

    ``GraphView(db, query={"type": "person"})``; ``view.query = {...}`` changes the filter.
    Edges are drawn between displayed nodes. Clicking a node shows its record (also in
    ``view.selected``). Changes reach the front end as coalesced deltas, at most every
    ``interval`` seconds (default 0.1), over the widget's comm.
    """

    _esm = esm("graph.js", ForceGraph="force-graph.min.js")
    _css = css("widgets.css")

    query = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    node_count = traitlets.Int(0).tag(sync=True)
    link_count = traitlets.Int(0).tag(sync=True)
    selected = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    height = traitlets.Int(480).tag(sync=True)

    def __init__(self, db: Any, query: dict[str, Any] | None = None, *, height: int = 480, **kwargs: Any) -> None:
        super().__init__(db, height=height, **kwargs)
        self._live: LiveQuery | None = None
        self._shown: dict[str, list[str]] = {}  # id -> edges, what the front end has (after flush)
        self._pending: dict[str, dict[str, Any] | None] = {}  # id -> summary, None = remove
        self._access.call(self._set_query, query)
        self.query = query
        self.observe(self._on_query_trait, names="query")
        self._subscribe("change")

    # ---------------------------------------------------------------- query

    def _set_query(self, query: dict[str, Any] | None) -> bool:
        """(loop thread) Select the nodes again; False (and ``error`` set) for an invalid query."""
        try:
            compiled = compile_query(query)
            live = LiveQuery(self._access.db.graph.nodes, compiled)
        except QueryError as e:
            self.error = str(e)
            return False
        with self._lock:
            self.error = ""
            self._live = live
            self._pending.clear()
            self._shown = {n.id: list(n.edges) for n in live.results}
            self._update_counts()
        return True

    def _on_query_trait(self, change: dict[str, Any]) -> None:
        self._access.submit(self._reset_query, change["new"])

    def _reset_query(self, query: dict[str, Any] | None) -> None:
        if self._set_query(query):
            self._send_snapshot()

    # ---------------------------------------------------------------- events -> deltas

    def _on_event(self, name: str, batch: Any) -> None:
        live = self._live
        if live is None:
            return
        events = live.on_changes(batch.changes)
        if not events:
            return
        with self._lock:
            for ev in events:
                self._pending[ev["id"]] = None if ev["action"] == "removed" else node_summary(ev)
        self._throttle.poke()

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        upsert = [s for s in pending.values() if s is not None]
        remove = [i for i, s in pending.items() if s is None and i in self._shown]
        for s in upsert:
            self._shown[s["id"]] = s["edges"]
        for i in remove:
            del self._shown[i]
        self.send({"type": "delta", "upsert": upsert, "remove": remove})
        self._update_counts()

    def _update_counts(self) -> None:
        shown = self._shown
        self.node_count = len(shown)
        self.link_count = sum(1 for edges in shown.values() for e in edges if e in shown)

    # ---------------------------------------------------------------- front end

    def _send_snapshot(self) -> None:
        """(loop thread) Everything displayed, replacing the front end's state."""
        with self._lock:
            pending, self._pending = self._pending, {}
            for i, s in pending.items():
                if s is None:
                    self._shown.pop(i, None)
                else:
                    self._shown[i] = s["edges"]
            nodes = self._access.db.graph.nodes
            self._shown = {i: e for i, e in self._shown.items() if i in nodes}
            summaries = [node_summary(nodes[i]) for i in self._shown]
            self._shown = {s["id"]: s["edges"] for s in summaries}
            self.send({"type": "snapshot", "nodes": summaries})
            self._update_counts()

    def _on_front_end(self, content: dict[str, Any]) -> None:
        kind = content.get("type")
        if kind == "ready":
            self._access.submit(self._send_snapshot)
        elif kind == "details" and isinstance(content.get("id"), str):
            self._access.submit(self._send_details, content["id"])

    def _send_details(self, nid: str) -> None:
        node = self._access.db.graph.nodes.get(nid)
        record = node.to_dict() if node is not None else {"id": nid, "removed": True}
        self.selected = record
        self.send({"type": "details", "node": record})

    @property
    def node_ids(self) -> list[str]:
        """Ids currently displayed (as of the last flush)."""
        with self._lock:
            return list(self._shown)
