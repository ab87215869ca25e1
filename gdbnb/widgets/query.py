"""QueryView: a live, sortable, paged table of ``map`` results with an editable query."""

from __future__ import annotations

from typing import Any

import traitlets

from ..core.query import compile_query, run_map
from ..errors import QueryError
from ._base import LiveWidget
from ._bundle import css, esm

__all__ = ["QueryView"]

_MAX_COLUMNS = 12


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Value fields shown as columns: the keys of the page's object values, first seen first."""
    cols: dict[str, None] = {}
    for r in rows:
        v = r.get("value")
        if isinstance(v, dict):
            for k in v:
                cols.setdefault(k, None)
                if len(cols) >= _MAX_COLUMNS:
                    return list(cols)
    return list(cols)


class QueryView(LiveWidget):
    """``map`` results as a table that follows the database live.

    ``QueryView(db, {"type": "person"}, field="age", order="desc", page_size=25)``. The query
    can be edited in the widget (JSON) or from Python (``view.query = {...}``); clicking a column
    sorts by that value field (GenosDB's ``field``/``order``). The table is recomputed at most
    every ``interval`` seconds after a change, whatever the size of the burst.
    """

    _esm = esm("query.js")
    _css = css("widgets.css")

    query = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    field = traitlets.Unicode("").tag(sync=True)
    order = traitlets.Enum(("asc", "desc"), default_value="asc").tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)
    page_size = traitlets.Int(25).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    rows = traitlets.List([]).tag(sync=True)
    columns = traitlets.List([]).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, db: Any, query: dict[str, Any] | None = None, *, field: str = "", order: str = "asc",
                 page_size: int = 25, **kwargs: Any) -> None:
        super().__init__(db, query=query, field=field or "", order=order, page_size=page_size, **kwargs)
        self._dirty = False
        self._compiled = compile_query(query)  # an invalid initial query raises QueryError here
        self._access.call(self._refresh)
        self.observe(self._options_changed, names=["query", "field", "order", "page", "page_size"])
        self._subscribe("change")

    def _options_changed(self, change: dict[str, Any]) -> None:
        if change["name"] == "query":
            try:
                self._compiled = compile_query(change["new"])
            except QueryError as e:
                self.error = str(e)
                return
            self.page = 0
        self._access.submit(self._refresh)

    def _on_event(self, name: str, batch: Any) -> None:
        if batch.changes:
            with self._lock:
                self._dirty = True
            self._throttle.poke()

    def _flush(self) -> None:
        if self._dirty:
            self._refresh()

    def _refresh(self) -> None:
        """(loop thread) Run the query and publish the current page."""
        with self._lock:
            self._dirty = False
            try:
                results = run_map(self._access.db.graph.nodes, self._compiled, field=self.field or None,
                                  order=self.order)
            except QueryError as e:
                self.error = str(e)
                return
            size = max(1, self.page_size)
            last_page = max(0, (len(results) - 1) // size)
            page = min(max(0, self.page), last_page)
            rows = [n.to_dict() for n in results[page * size:(page + 1) * size]]
            with self.hold_sync():
                self.error = ""
                self.total = len(results)
                if page != self.page:
                    self.page = page
                self.rows = rows
                self.columns = _columns(rows)

    @property
    def results(self) -> list[dict[str, Any]]:
        """The rows of the current page (as of the last refresh)."""
        return list(self.rows)
