"""Notebook-native views of a database: pandas DataFrames, networkx graphs, the oplog, imports.

Every function takes an async ``Database`` or a blocking ``SyncDatabase``; reads run on the
database's loop thread (see ``gdbnb/widgets/_access.py``), so they are safe from a kernel cell
whichever kind you opened. pandas, networkx and tqdm are optional: they are imported when a
function needs them, and a missing one raises ImportError naming ``pip install 'gdbnb[data]'``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import importlib
import math
import threading
from typing import Any, Callable, Iterable, Iterator

from .core.node import MISSING
from .core.oplog import entry_to_wire
from .core.query import run_map
from .widgets._access import DatabaseAccess, access

__all__ = ["to_dataframe", "db_to_dataframe", "to_networkx", "history", "ChangeLog", "import_nodes"]


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"this needs {module.split('.')[0]}: pip install 'gdbnb[data]'") from e


def _when(physical: Any) -> Any:
    return _dt.datetime.fromtimestamp(physical / 1000, _dt.timezone.utc) if isinstance(physical, (int, float)) else None


def _records(results: Any) -> list[dict[str, Any]]:
    if isinstance(results, dict) and "results" in results:
        results = results["results"]
    out = []
    for r in results:
        out.append(r.to_dict() if hasattr(r, "to_dict") and not isinstance(r, dict) else r)
    return out


def to_dataframe(results: Any, *, flatten: bool = True) -> Any:
    """``map`` results (the list, or the whole ``{"results": …}`` answer) as a DataFrame indexed by id.

    Object values become columns (nested objects flattened as ``a.b`` when ``flatten``); other
    values go in a ``value`` column. ``_edges`` holds the edge list and ``_updated`` the node's
    HLC time (UTC), ``_logical`` its logical counter. Row order is the result order.
    """
    pd = _require("pandas")
    recs = _records(results)
    values = [r.get("value") for r in recs]
    if values and all(isinstance(v, dict) for v in values):
        frame = pd.json_normalize(values, sep=".") if flatten else pd.DataFrame.from_records(values)
    else:
        frame = pd.DataFrame({"value": values})
    ts = [r.get("timestamp") or {} for r in recs]
    frame["_edges"] = [list(r.get("edges") or []) for r in recs]
    frame["_updated"] = pd.to_datetime([_when(t.get("physical")) for t in ts], utc=True)
    frame["_logical"] = [t.get("logical") for t in ts]
    frame.index = pd.Index([r["id"] for r in recs], name="id")
    return frame


def _map_nodes(acc: DatabaseAccess, query: Any, options: dict[str, Any]) -> list[Any]:
    return acc.call(lambda: run_map(acc.db.graph.nodes, query, **options))


def db_to_dataframe(db: Any, query: dict[str, Any] | None = None, **map_options: Any) -> Any:
    """``to_dataframe`` of ``db.map(query, field=…, order=…, limit=…)``, read in one go."""
    acc = access(db)
    nodes = _map_nodes(acc, query, map_options)
    return to_dataframe([n.to_dict() for n in nodes])


def to_networkx(db: Any, query: dict[str, Any] | None = None) -> Any:
    """The graph (or the nodes ``query`` selects) as a ``networkx.DiGraph``.

    Node attributes: the value's fields when it is an object (else ``value``) plus
    ``_timestamp`` (``(physical, logical)``); edges go from a node to each id in its ``edges``
    that is also selected.
    """
    nx = _require("networkx")
    acc = access(db)
    nodes = _map_nodes(acc, query, {})
    g = nx.DiGraph(room=acc.db.room)
    for n in nodes:
        value = None if n.value is MISSING else n.value
        attrs = dict(value) if isinstance(value, dict) else {"value": value}
        attrs["_timestamp"] = tuple(n.timestamp)
        g.add_node(n.id, **attrs)
    for n in nodes:
        for t in n.edges:
            if t in g:
                g.add_edge(n.id, t)
    return g


def history(db: Any) -> Any:
    """The oplog window (the last ``oplog_size`` operations, oldest first) as a DataFrame.

    Columns: ``type`` (upsert/remove/link), ``id`` (the source of a link), ``target`` (links),
    ``value``, ``time`` (UTC, from the HLC), ``physical``, ``logical``. Like GenosDB, the oplog
    keeps no values: ``value`` is the node's *current* value (as a delta sync would send it),
    None once removed. Use ``ChangeLog`` to record values as they change.
    """
    pd = _require("pandas")
    acc = access(db)
    def read() -> list[dict[str, Any]]:
        nodes = acc.db.graph.nodes
        out = []
        for e in acc.db.graph.oplog:
            w = entry_to_wire(e)
            node = nodes.get(w["id"]) if w.get("type") == "upsert" else None
            w["value"] = None if node is None or node.value is MISSING else node.value
            out.append(w)
        return out

    entries = acc.call(read)
    rows = []
    for e in entries:
        ts = e.get("timestamp") or {}
        rows.append({"type": e.get("type"), "id": e.get("id") or e.get("sourceId"), "target": e.get("targetId"),
                     "value": e.get("value"), "time": _when(ts.get("physical")),
                     "physical": ts.get("physical"), "logical": ts.get("logical")})
    cols = ["type", "id", "target", "value", "time", "physical", "logical"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


class ChangeLog:
    """Records every change event of ``db`` from now on (until ``stop()``): one row per node change.

    ``log = ChangeLog(db)`` … ``log.to_dataframe()``. Rows: ``at`` (UTC wall clock), ``origin``
    ("local" or a peer id), ``kind`` (write/ops/full_state/clear), ``action``
    (added/updated/removed), ``id``, ``value``, ``old_value``, ``edges``. ``max_rows`` keeps the
    newest rows only. Also a context manager.
    """

    def __init__(self, db: Any, *, max_rows: int | None = 100_000) -> None:
        self._acc = access(db)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.max_rows = max_rows
        self._unsubscribe: Callable[[], None] | None = self._acc.events.on("change", self._on_change)

    def _on_change(self, batch: Any) -> None:
        at = _dt.datetime.now(_dt.timezone.utc)
        rows = []
        for c in batch.changes:
            node, old = c.node, c.old
            rows.append({
                "at": at, "origin": batch.origin, "kind": batch.kind, "action": c.action, "id": c.id,
                "value": None if node is None or node.value is MISSING else node.value,
                "old_value": None if old is None or old.value is MISSING else old.value,
                "edges": list(node.edges) if node is not None else [],
            })
        with self._lock:
            self._rows.extend(rows)
            if self.max_rows is not None and len(self._rows) > self.max_rows:
                del self._rows[: len(self._rows) - self.max_rows]

    @property
    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def to_dataframe(self) -> Any:
        pd = _require("pandas")
        cols = ["at", "origin", "kind", "action", "id", "value", "old_value", "edges"]
        return pd.DataFrame(self.rows, columns=cols)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def __enter__(self) -> "ChangeLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ChangeLog {len(self)} changes{'' if self._unsubscribe else ', stopped'}>"


# ---------------------------------------------------------------------------- imports


def _json_safe(v: Any) -> Any:
    """pandas gives NaN for missing cells and numpy scalars for numbers: make them JSON."""
    if isinstance(v, float) and math.isnan(v):
        return None
    item = getattr(v, "item", None)
    if callable(item) and type(v).__module__ == "numpy":
        return item()
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _prepare(records: Any, id_key: str | None) -> tuple[list[tuple[str | None, Any]], int | None]:
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # a DataFrame
        records = records.to_dict("records")
    items: list[tuple[str | None, Any]] = []
    for r in records:
        if isinstance(r, tuple) and len(r) == 2:
            items.append((r[0], _json_safe(r[1])))
        elif isinstance(r, dict) and id_key and id_key in r:
            value = {k: _json_safe(v) for k, v in r.items() if k != id_key}
            nid = r[id_key]
            items.append((None if nid is None else str(nid), value))
        else:
            items.append((None, _json_safe(r)))
    return items, len(items)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    tqdm = _require("tqdm.auto").tqdm
    return tqdm(total=total, desc=desc, unit="node")


async def _put_chunk(db: Any, chunk: list[tuple[str | None, Any]]) -> list[str]:
    # puts started together are committed as one transaction (Database groups a loop iteration)
    return list(await asyncio.gather(*(db.put(v, i) for i, v in chunk)))


def import_nodes(db: Any, records: Iterable[Any], *, id_key: str | None = "id", progress: bool = True,
                 chunk_size: int = 500, desc: str = "import") -> Any:
    """Put many nodes, in chunks of ``chunk_size`` (one transaction each), with a progress bar.

    ``records``: dicts (``id_key`` gives the node id, the rest is the value; no id: a new one),
    ``(id, value)`` pairs, other JSON values, or a pandas DataFrame (one node per row, NaN ->
    null). Returns the ids in order. With a ``SyncDatabase`` this blocks; with an async
    ``Database`` it returns a coroutine: ``ids = await import_nodes(db, rows)``.
    """
    items, total = _prepare(records, id_key)
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), max(1, chunk_size))]
    acc = access(db)
    if acc.original is acc.db:  # an async Database: the caller awaits
        async def run() -> list[str]:
            bar = _progress(total or 0, progress, desc)
            ids: list[str] = []
            try:
                for c in chunks:
                    ids += await _put_chunk(acc.db, c)
                    if bar is not None:
                        bar.update(len(c))
            finally:
                if bar is not None:
                    bar.close()
            return ids

        return run()
    bar = _progress(total or 0, progress, desc)
    ids: list[str] = []
    try:
        for c in chunks:
            ids += acc.run(_put_chunk(acc.db, c))
            if bar is not None:
                bar.update(len(c))
    finally:
        if bar is not None:
            bar.close()
    return ids
