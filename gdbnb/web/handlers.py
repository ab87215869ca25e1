"""The web handlers: status page, SSE stream and JSON API, written once, mounted twice.

``make_handlers(base_url, context)`` returns Tornado rules for the standalone server
(``gdbnb.web.server``) and for the Jupyter server extension alike. Every handler gets the
:class:`~gdbnb.web.context.GdbWebContext` as its only init argument; authorization goes through
``context.auth`` (see ``gdbnb.web.auth``) after the base class's own ``prepare`` has run, so a
Jupyter base class (``handler_base=``) authenticates first.

Routes (``B`` = ``base_url`` + ``gdb``; ``R`` = ``B/api`` or ``B/api/rooms/<room>``):

=========================  ============  ==========================================
``B/``                     GET           status page (HTML; ``?room=`` picks a room)
``B/static/<file>``        GET           page assets (public: code, no data)
``B/events``               GET           SSE (``?room=``; ``Last-Event-ID`` resumes)
``B/api/rooms``            GET           rooms served
``R/status``               GET           room, peer id, peers, counts, sync counters
``R/peers``                GET           peers live
``R/recent``               GET           recent events (``?limit=``, ``?event=``)
``R/nodes``                GET / POST    ``?id=`` (repeatable) / create ``{value, id?}``
``R/nodes/<id>``           GET/PUT/DEL   one node / put ``{value}`` / remove
``R/map``                  GET / POST    ``map`` query (``?query=<json>&field=…``) / body
``R/link``                 POST          ``{source, target}``
=========================  ============  ==========================================
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from http.client import responses
from typing import Any, Awaitable, Callable, TypeVar

from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from ..errors import ClosedError, GdbnbError, QueryError, ValidationError
from .auth import http_error
from .context import GdbWebContext

__all__ = [
    "GdbHandler",
    "StatusPageHandler",
    "EventsHandler",
    "RoomsHandler",
    "StatusHandler",
    "PeersHandler",
    "RecentHandler",
    "NodesHandler",
    "NodeHandler",
    "MapHandler",
    "LinkHandler",
    "GdbStaticHandler",
    "make_handlers",
    "STATIC_DIR",
    "MAX_JSON_BODY",
]

log = logging.getLogger("gdbnb.web")
T = TypeVar("T")

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
#: largest JSON request body accepted (bytes)
MAX_JSON_BODY = 16 * 1024 * 1024
#: results returned by ``map`` when the request gives no limit
DEFAULT_MAP_LIMIT = 10_000
_JSON = "application/json; charset=UTF-8"
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def _jsonable(x: Any) -> Any:
    from .hub import _jsonable as conv

    return conv(x)


class GdbHandler(RequestHandler):
    """Base of every gdbnb handler: context, room, auth hook, JSON errors.

    ``read_methods`` lists the HTTP methods authorized as ``"read"``; others are ``"write"``.
    """

    read_methods: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"})
    #: False for handlers that need no auth at all (public assets)
    needs_auth: bool = True
    gdb: GdbWebContext

    def initialize(self, context: GdbWebContext, **kwargs: Any) -> None:  # type: ignore[override]
        self.gdb = context
        super().initialize(**kwargs)

    async def prepare(self) -> None:  # type: ignore[override]
        out = super().prepare()
        if inspect.isawaitable(out):
            await out
        if self._finished:
            return
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.needs_auth:
            action = "read" if self.request.method in self.read_methods else "write"
            res = self.gdb.auth.authorize(self, action)
            if inspect.isawaitable(res):
                await res

    # ------------------------------------------------------------------ helpers

    @property
    def room(self) -> str | None:
        room = self.path_kwargs.get("room") if self.path_kwargs else None
        return room or self.get_query_argument("room", None) or None

    @property
    def db(self) -> Any:
        return self.gdb.database(self.room)

    async def run_db(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(db)`` on the database's loop; data errors become 4xx."""
        db = self.db
        try:
            return await self.gdb.call(db, lambda: fn(db))
        except (ValidationError, QueryError) as e:
            raise http_error(400, str(e)) from None
        except ClosedError as e:
            raise http_error(503, str(e)) from None
        except GdbnbError as e:
            log.warning("request failed: %s", e)
            raise http_error(500, type(e).__name__) from None

    def json_body(self) -> Any:
        body = self.request.body or b""
        if len(body) > MAX_JSON_BODY:
            raise http_error(413, f"body above {MAX_JSON_BODY} bytes")
        if not body.strip():
            raise http_error(400, "a JSON body is required")
        return _parse_json(body, "body")

    def json_object(self) -> dict[str, Any]:
        obj = self.json_body()
        if not isinstance(obj, dict):
            raise http_error(400, "the body must be a JSON object")
        return obj

    def send_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", _JSON)
        self.set_header("Cache-Control", "no-store")
        self.finish(_dumps(obj))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """``{"error": "..."}``, never a stack trace."""
        message = responses.get(status_code, "error")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, HTTPError):
            if exc.log_message and status_code < 500:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            elif exc.reason:
                message = exc.reason
        elif status_code >= 500:
            message = "internal error"
        self.clear_header("Content-Disposition")
        self.set_header("Content-Type", _JSON)
        self.set_header("Cache-Control", "no-store")
        self.finish(_dumps({"error": message}))


def _parse_json(text: bytes | str, what: str) -> Any:
    from ..wire.jsjson import js_loads

    try:
        return js_loads(text)
    except Exception as e:  # ProtocolError (bad UTF-8, too deep), ValueError, RecursionError
        raise http_error(400, f"{what} is not valid JSON: {e}") from None


# ---------------------------------------------------------------------- page and assets


class StatusPageHandler(GdbHandler):
    """The status page: one static HTML file; everything it shows comes from the API/SSE."""

    def get(self, room: str | None = None) -> None:
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
            page = f.read()
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", _PAGE_CSP)
        self.set_header("Referrer-Policy", "no-referrer")  # the URL may carry ?token=
        self.finish(page)


class GdbStaticHandler(StaticFileHandler):
    """Page assets. Public on purpose: they are the package's code and hold no data."""

    def initialize(self, context: GdbWebContext | None = None, path: str = STATIC_DIR, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(path=path, **kwargs)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-cache")


class SlashRedirectHandler(RequestHandler):
    """``/gdb`` -> ``/gdb/`` (relative asset and API URLs need the slash)."""

    def get(self) -> None:
        q = self.request.query
        self.redirect(self.request.path + "/" + ("?" + q if q else ""), permanent=False)


# ---------------------------------------------------------------------- SSE


class EventsHandler(GdbHandler):
    """``text/event-stream`` of one room: node, peer and sync events (see ``gdbnb.web.hub``)."""

    _sub: Any = None

    async def get(self, room: str | None = None) -> None:
        hub = self.gdb.hub(self.room)
        last = self.request.headers.get("Last-Event-ID") or self.get_query_argument("lastEventId", None)
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        sub = self._sub = hub.subscribe(last)
        sub.on_drop = self._close_connection
        keepalive = self.gdb.sse_keepalive
        try:
            self.write(f"retry: 2000\n: gdbnb {hub.room}\n\n")
            await self.flush()
            while True:
                try:
                    ev = await asyncio.wait_for(sub.get(), keepalive)
                except asyncio.TimeoutError:
                    self.write(": keepalive\n\n")
                    await self.flush()
                    continue
                if ev is None:
                    break
                self.write(ev.encode())
                while (more := sub.get_nowait()) is not None:  # whatever else is queued, one flush
                    self.write(more.encode())
                if sub.closed and not sub.dropped:
                    break
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            sub.close()
        if not self._finished and not self.request.connection.stream.closed():  # type: ignore[attr-defined]
            self.finish()

    def _close_connection(self) -> None:
        try:
            self.request.connection.close()  # type: ignore[attr-defined]
        except Exception:
            pass

    def on_connection_close(self) -> None:
        if self._sub is not None:
            self._sub.close()


# ---------------------------------------------------------------------- JSON API


class RoomsHandler(GdbHandler):
    def get(self) -> None:
        self.send_json({"default": self.gdb.default_room, "rooms": sorted(self.gdb.rooms)})


def _peers(network: Any) -> list[Any]:
    if network is None:
        return []
    try:
        peers = network.peers()
    except Exception:
        log.debug("network.peers() failed", exc_info=True)
        return []
    if isinstance(peers, dict):
        out = []
        for pid, info in peers.items():
            rec = _jsonable(info)
            rec = rec if isinstance(rec, dict) else {"info": rec}
            rec.setdefault("peer", pid)
            out.append(rec)
        return out
    return [_jsonable(p) for p in peers]


class StatusHandler(GdbHandler):
    async def get(self, room: str | None = None) -> None:
        db = self.db
        hub = self.gdb.hub(db.room)

        async def collect(d: Any) -> dict[str, Any]:
            net = d.network
            status: dict[str, Any] = {
                "room": d.room,
                "stats": d.stats(),
                "network": net is not None,
                "peer_id": getattr(net, "peer_id", None),
                "relay_url": getattr(net, "relay_url", None),
                "peers": _peers(net),
            }
            if net is not None and callable(getattr(net, "status", None)):
                try:
                    status["network_status"] = _jsonable(net.status())
                except Exception:
                    log.debug("network.status() failed", exc_info=True)
            return status

        status = await self.run_db(collect)
        status.update({
            "rooms": sorted(self.gdb.rooms),
            "sync": {"served": hub.counters["sync_served"], "applied": hub.counters["sync_applied"]},
            "sse": {"clients": hub.clients, "last_event_id": hub.last_event_id},
            "info": _jsonable(self.gdb.info),
        })
        if self.gdb.info.get("relay_url"):
            status["relay_url"] = self.gdb.info["relay_url"]
        self.send_json(status)


class PeersHandler(GdbHandler):
    async def get(self, room: str | None = None) -> None:
        async def collect(d: Any) -> list[Any]:
            return _peers(d.network)

        self.send_json({"peers": await self.run_db(collect)})


class RecentHandler(GdbHandler):
    def get(self, room: str | None = None) -> None:
        hub = self.gdb.hub(self.room)
        limit = _int_arg(self, "limit", 50, maximum=hub.buffer.maxlen or 1000)
        names = self.get_query_arguments("event") or None
        self.send_json({
            "events": [ev.as_dict() for ev in hub.recent(limit, names)],
            "last_event_id": hub.last_event_id,
        })


def _int_arg(handler: RequestHandler, name: str, default: int, *, maximum: int) -> int:
    raw = handler.get_query_argument(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise http_error(400, f"{name} must be an integer") from None
    if value < 0:
        raise http_error(400, f"{name} must be >= 0")
    return min(value, maximum)


def _node_id(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise http_error(400, "node id must be a non-empty string")
    return raw


class NodesHandler(GdbHandler):
    async def get(self, room: str | None = None) -> None:
        ids = [_node_id(i) for i in self.get_query_arguments("id")]
        if not ids:
            raise http_error(400, "give ?id=… (repeatable), or use /map")

        async def fetch(d: Any) -> dict[str, Any]:
            return {i: await d.get(i) for i in ids}

        self.send_json({"nodes": await self.run_db(fetch)})

    async def post(self, room: str | None = None) -> None:
        body = self.json_object()
        if "value" not in body:
            raise http_error(400, "the body needs a 'value'")
        node_id = _node_id(body["id"]) if body.get("id") is not None else None
        new_id = await self.run_db(lambda d: d.put(body["value"], node_id))
        self.send_json({"id": new_id}, status=201)


class NodeHandler(GdbHandler):
    async def get(self, node_id: str, room: str | None = None) -> None:
        node = await self.run_db(lambda d: d.get(_node_id(node_id)))
        if node is None:
            raise http_error(404, f"no node {node_id!r}")
        self.send_json(node)

    async def put(self, node_id: str, room: str | None = None) -> None:
        body = self.json_object()
        if "value" not in body:
            raise http_error(400, "the body needs a 'value'")
        new_id = await self.run_db(lambda d: d.put(body["value"], _node_id(node_id)))
        self.send_json({"id": new_id})

    async def delete(self, node_id: str, room: str | None = None) -> None:
        removed = await self.run_db(lambda d: d.remove(_node_id(node_id)))
        if not removed:
            raise http_error(404, f"no node {node_id!r}")
        self.send_json({"removed": True, "id": node_id})


_MAP_KEYS = ("query", "field", "order", "limit", "after", "before")


class MapHandler(GdbHandler):
    """``map`` queries: the same operators as ``Database.map`` (a read, even over POST)."""

    read_methods = frozenset({"GET", "HEAD", "OPTIONS", "POST"})

    async def get(self, room: str | None = None) -> None:
        opts: dict[str, Any] = {}
        raw_query = self.get_query_argument("query", None)
        if raw_query:
            opts["query"] = _parse_json(raw_query, "query")
        for k in ("field", "order", "after", "before"):
            v = self.get_query_argument(k, None)
            if v is not None:
                opts[k] = v
        if self.get_query_argument("limit", None) is not None:
            opts["limit"] = _int_arg(self, "limit", 0, maximum=2**31)
        await self._run(opts)

    async def post(self, room: str | None = None) -> None:
        body = self.json_object()
        opts = {}
        for k, v in body.items():
            key = k.lstrip("$")
            if key not in _MAP_KEYS:
                raise http_error(400, f"unknown map option {k!r}")
            opts[key] = v
        await self._run(opts)

    async def _run(self, opts: dict[str, Any]) -> None:
        limit = opts.get("limit")
        capped = limit is None
        if capped:
            opts["limit"] = DEFAULT_MAP_LIMIT + 1
        for k in ("field", "after", "before"):
            if k in opts and opts[k] is not None and not isinstance(opts[k], str):
                raise http_error(400, f"{k} must be a string")
        query = opts.pop("query", None)

        async def run(d: Any) -> list[Any]:
            res = await d.map(query, **opts)
            return res["results"]

        results = await self.run_db(run)
        truncated = capped and len(results) > DEFAULT_MAP_LIMIT
        if truncated:
            results = results[:DEFAULT_MAP_LIMIT]
        self.send_json({"results": results, "count": len(results), "truncated": truncated})


class LinkHandler(GdbHandler):
    async def post(self, room: str | None = None) -> None:
        body = self.json_object()
        source, target = _node_id(body.get("source")), _node_id(body.get("target"))
        linked = await self.run_db(lambda d: d.link(source, target))
        if not linked:
            raise http_error(404, "source or target node does not exist")
        self.send_json({"linked": True, "source": source, "target": target})


# ---------------------------------------------------------------------- routing


def _join(*parts: str) -> str:
    """``url_path_join`` without importing jupyter_server: one slash between parts."""
    out = ""
    for p in parts:
        if not p:
            continue
        out = out.rstrip("/") + "/" + p.lstrip("/") if out else p
    return out if out.startswith("/") else "/" + out


def _derive(cls: type, base: type | None) -> type:
    """``cls`` with ``base`` mixed in under it (for the Jupyter mount), or ``cls`` itself."""
    if base is None:
        return cls
    return type(cls.__name__, (cls, base), {"__module__": cls.__module__, "__doc__": cls.__doc__})


def make_handlers(
    base_url: str,
    context: GdbWebContext,
    *,
    handler_base: type[RequestHandler] | None = None,
    prefix: str = "gdb",
) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    """Tornado rules ``(pattern, handler_class, {"context": context})`` under ``base_url/prefix``.

    ``handler_base``: a ``RequestHandler`` subclass mixed into every gdbnb handler, below it in
    the MRO (e.g. Jupyter's ``JupyterHandler`` / ``APIHandler``, so that its ``prepare``
    authenticates the user before ``context.auth`` authorizes the action).
    """
    base = _join(base_url or "/", prefix)
    api = base + r"/api(?:/rooms/(?P<room>[^/]+))?"
    kw = {"context": context}
    rules: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
        (base, SlashRedirectHandler, {}),
        (base + "/", _derive(StatusPageHandler, handler_base), kw),
        (base + r"/static/(.*)", GdbStaticHandler, {"path": STATIC_DIR}),
        (base + r"/(?:rooms/(?P<room>[^/]+)/)?events", _derive(EventsHandler, handler_base), kw),
        (base + r"/api/rooms", _derive(RoomsHandler, handler_base), kw),
        (api + r"/status", _derive(StatusHandler, handler_base), kw),
        (api + r"/peers", _derive(PeersHandler, handler_base), kw),
        (api + r"/recent", _derive(RecentHandler, handler_base), kw),
        (api + r"/nodes", _derive(NodesHandler, handler_base), kw),
        (api + r"/nodes/(?P<node_id>[^/]+)", _derive(NodeHandler, handler_base), kw),
        (api + r"/map", _derive(MapHandler, handler_base), kw),
        (api + r"/link", _derive(LinkHandler, handler_base), kw),
    ]
    return rules
