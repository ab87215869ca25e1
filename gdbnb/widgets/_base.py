"""What every live widget shares: the database access, the change subscription, the throttle."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import anywidget

from ._access import DatabaseAccess, access
from ._throttle import DEFAULT_INTERVAL, Throttle

__all__ = ["LiveWidget"]

log = logging.getLogger("gdbnb.widgets")


class LiveWidget(anywidget.AnyWidget):
    """An anywidget fed by ``db.events``.

    Subclasses override ``_on_event`` (loop thread, keep it cheap: record what changed under
    ``self._lock`` and ``self._throttle.poke()``), ``_flush`` (loop thread, at most every
    ``interval``: push what was recorded to the front end) and ``_on_front_end`` (custom messages
    from the front end).
    """

    def __init__(self, db: Any, *, interval: float = DEFAULT_INTERVAL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._access: DatabaseAccess = access(db)
        self._lock = threading.RLock()
        self._throttle = Throttle(self._access, self._flush_guarded, interval)
        self._unsubscribe: list[Callable[[], None]] = []
        self._closed_db = False
        self.on_msg(self._on_msg)

    def _subscribe(self, *names: str) -> None:
        bus = self._access.events
        for name in names:
            self._unsubscribe.append(bus.on(name, lambda payload, _n=name: self._on_event(_n, payload)))
        self._unsubscribe.append(bus.on("closed", lambda _p: self._on_db_closed()))

    # ---------------------------------------------------------------- overridden by subclasses

    def _on_event(self, name: str, payload: Any) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _on_front_end(self, content: dict[str, Any]) -> None:
        pass

    # ---------------------------------------------------------------- plumbing

    def _flush_guarded(self) -> None:
        try:
            with self._lock:
                self._flush()
        except Exception:
            log.exception("%s: flush failed", type(self).__name__)

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict):
            try:
                self._on_front_end(content)
            except Exception:
                log.exception("%s: front-end message %r failed", type(self).__name__, content.get("type"))

    def _on_db_closed(self) -> None:
        self._closed_db = True
        self._throttle.poke()

    def flush(self) -> None:
        """Push everything pending to the front end now (normally done at most every ``interval``)."""
        self._throttle.flush_now()

    @property
    def flushes(self) -> int:
        """How many times updates were pushed (each push coalesces every change since the last)."""
        return self._throttle.flushes

    def close(self) -> None:
        """Stop following the database and close the widget."""
        for unsub in self._unsubscribe:
            unsub()
        self._unsubscribe.clear()
        self._throttle.close()
        super().close()
