"""RoomView: who we are in the room, the peers we see, and the sync activity, live."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import traitlets

from ._base import LiveWidget
from ._bundle import css, esm

__all__ = ["RoomView"]

_PEER_STATES = {"peer:join": "connected", "peer:leave": "left", "peer:seen": "seen", "peer:lost": "lost"}
_EVENTS = ("peer:join", "peer:leave", "peer:seen", "peer:lost", "sync:served", "sync:applied", "sync:failed",
           "relay:up", "relay:down")


def _describe(name: str, p: dict[str, Any]) -> str:
    peer = str(p.get("peer") or "?")[:12]
    if name.startswith("peer:"):
        kind = p.get("type") or "browser"
        extra = f" ({p['reason']})" if p.get("reason") else ""
        return f"{peer} {_PEER_STATES[name]} as {kind}{extra}"
    if name == "sync:served":
        what = f"{p.get('ops', 0)} ops" if p.get("kind") == "delta" else f"{p.get('nodes', 0)} nodes"
        return f"served {p.get('kind')} sync to {peer}: {what}"
    if name == "sync:applied":
        return f"applied {p.get('kind')} from {peer}: {p.get('accepted', 0)} accepted, {p.get('rejected', 0)} rejected"
    if name == "sync:failed":
        return f"send failed ({p.get('kind')}): {p.get('error')}"
    return f"{name.split(':')[1]} {p.get('url')}"


class RoomView(LiveWidget):
    """Our peer id, the peers of the room (joining, leaving, seen) with their type, sync activity.

    Works without a network too (then it shows the local counts only). ``max_activity`` lines of
    activity are kept; updates are pushed at most every ``interval`` seconds.
    """

    _esm = esm("room.js")
    _css = css("widgets.css")

    room = traitlets.Unicode("").tag(sync=True)
    peer_id = traitlets.Unicode("").tag(sync=True)
    online = traitlets.Bool(False).tag(sync=True)
    peers = traitlets.List([]).tag(sync=True)
    activity = traitlets.List([]).tag(sync=True)
    stats = traitlets.Dict({}).tag(sync=True)
    relays = traitlets.List([]).tag(sync=True)

    def __init__(self, db: Any, *, max_activity: int = 100, **kwargs: Any) -> None:
        super().__init__(db, **kwargs)
        self._peers: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending: list[tuple[float, str, dict[str, Any]]] = []
        self._activity: deque[dict[str, Any]] = deque(maxlen=max_activity)
        self._counts = {"local_writes": 0, "remote_batches": 0}
        net = self._access.network
        if net is not None:
            for p in self._access.call(net.peers):
                key = (str(p.get("peer")), getattr(net, "room_id", ""))
                self._peers[key] = {"peer": key[0], "type": p.get("type"), "room": key[1], "state": "connected",
                                    "since": time.time()}
        self._subscribe("change", *_EVENTS)
        self._access.call(self._flush)

    def _on_event(self, name: str, payload: Any) -> None:
        with self._lock:
            if name == "change":
                self._counts["local_writes" if payload.origin == "local" else "remote_batches"] += 1
            else:
                self._pending.append((time.time(), name, dict(payload or {})))
        self._throttle.poke()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for t, name, p in pending:
            if name in _PEER_STATES:
                key = (str(p.get("peer")), str(p.get("room") or ""))
                entry = self._peers.setdefault(key, {"peer": key[0], "room": key[1], "type": None})
                entry["state"] = _PEER_STATES[name]
                entry["since"] = t
                if p.get("type"):
                    entry["type"] = p["type"]
            self._activity.appendleft({"t": t, "event": name, "text": _describe(name, p)})
        db, net = self._access.db, self._access.network
        status: dict[str, Any] = {}
        if net is not None:
            try:
                status = net.status()
            except Exception:
                status = {}
        stats = dict(db.stats()) if not db.closed else {"room": db.room}
        stats.update(self._counts)
        stats.update(status.get("stats") or {})
        with self.hold_sync():
            self.room = db.room
            self.peer_id = str(getattr(net, "peer_id", "") or "")
            self.online = net is not None and not self._closed_db
            self.peers = sorted(self._peers.values(), key=lambda e: (e["state"] != "connected", -e["since"]))
            self.activity = list(self._activity)
            self.stats = stats
            self.relays = list(status.get("relays") or [])
