"""A small synchronous event bus: one stream of named events that every consumer subscribes to.

Listeners run in the emitter's thread, in subscription order. A listener that raises is logged
and skipped: a broken consumer (a widget, an SSE client) never breaks a write.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

__all__ = ["EventBus", "Listener"]

log = logging.getLogger("gdbnb.events")

Listener = Callable[[str, Any], None]


class EventBus:
    def __init__(self) -> None:
        self._by_name: dict[str, list[Callable[[Any], None]]] = {}
        self._any: list[Listener] = []

    def on(self, name: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(payload)`` for each ``name`` event; returns the unsubscribe function."""
        self._by_name.setdefault(name, []).append(callback)

        def unsubscribe() -> None:
            try:
                self._by_name.get(name, []).remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def on_any(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(name, payload)`` for every event."""
        self._any.append(callback)

        def unsubscribe() -> None:
            try:
                self._any.remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def emit(self, name: str, payload: Any = None) -> None:
        for cb in tuple(self._by_name.get(name, ())):
            try:
                cb(payload)
            except Exception:
                log.exception("listener of %r failed", name)
        for any_cb in tuple(self._any):
            try:
                any_cb(name, payload)
            except Exception:
                log.exception("listener of all events failed on %r", name)
