"""Nostr relay client pool, as GenosRTC runs it (``signaling.md`` §4.1-§4.4).

One WebSocket per relay URL; every relay lives on its own: it opens, fails, backs off and comes
back independently of the others (3.333 s doubling to 30 s, reset once a socket opens). The
registered subscriptions are re-sent on every (re)open with the same ids and a fresh ``since``.
Publishing is fire-and-forget: an event for a relay whose socket is not open is dropped, as the
reference does (the room keeps announcing every 2.5 s anyway).

A relay that asks for proof of work (NOTICE or OK matching ``POW_NOTICE_RE`` with N > 0) is
closed and never used again by this pool. Incoming events are handed over as
``on_event(relay_index, sub_id, event)`` without verification, like the reference (pass
``verify=True`` to drop events whose id or signature is wrong).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from gdbnb.wire.nostr import (
    RELAY_REDUNDANCY,
    RelayEvent,
    RelayNotice,
    RelayOk,
    encode_close,
    encode_event,
    encode_req,
    normalize_relay_urls,
    now_s,
    parse_relay_message,
    pow_bits_needed,
    topic_kind,
    verify_event,
)

__all__ = [
    "RelayPool",
    "Backoff",
    "EventCallback",
    "StatusCallback",
    "RECONNECT_DELAY_S",
    "MAX_RECONNECT_DELAY_S",
    "MAX_INCOMING_MESSAGE_SIZE",
]

logger = logging.getLogger("gdbnb.relay_pool")

RECONNECT_DELAY_S = 3.333
MAX_RECONNECT_DELAY_S = 30.0
MAX_INCOMING_MESSAGE_SIZE = 256 * 1024  # an offer is a few KiB; public relays cap near 128 KiB

EventCallback = Callable[[int, str, dict[str, Any]], None]
StatusCallback = Callable[[int, bool], None]


class _DebugInfoLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs connection chatter at INFO; keep it at DEBUG for a long-lived client."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


@dataclass
class Backoff:
    """Reconnect delay: ``initial``, doubled after each failure up to ``maximum``; reset on open."""

    initial: float = RECONNECT_DELAY_S
    maximum: float = MAX_RECONNECT_DELAY_S
    current: float = 0.0

    def __post_init__(self) -> None:
        self.current = self.initial

    def reset(self) -> None:
        self.current = self.initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay


@dataclass(frozen=True, slots=True)
class _Subscription:
    sub_id: str
    topic: str
    kind: int


class _Relay:
    __slots__ = ("index", "url", "ws", "outbox", "disabled", "task", "backoff")

    def __init__(self, index: int, url: str, backoff: Backoff, max_outbox: int) -> None:
        self.index = index
        self.url = url
        self.ws: ClientConnection | None = None  # set while the socket is open
        self.outbox: asyncio.Queue[str] = asyncio.Queue(max_outbox)
        self.disabled = False  # asked for proof of work: never used again
        self.task: asyncio.Task[None] | None = None
        self.backoff = backoff


class RelayPool:
    """Connections to a list of Nostr relays, addressed by index in ``self.urls``.

    ``urls`` are normalized (one trailing ``/`` removed, duplicates dropped, at most
    ``limit`` kept: 10 like the reference's ``relayRedundancy``; None for no cap). Callbacks run on the event loop and must not block.
    """

    def __init__(
        self,
        urls: Iterable[str],
        on_event: EventCallback,
        *,
        on_status: StatusCallback | None = None,
        verify: bool = False,
        max_message_size: int = MAX_INCOMING_MESSAGE_SIZE,
        reconnect_delay: float = RECONNECT_DELAY_S,
        max_reconnect_delay: float = MAX_RECONNECT_DELAY_S,
        open_timeout: float = 10.0,
        max_outbox: int = 256,
        limit: int | None = RELAY_REDUNDANCY,
    ) -> None:
        self.urls: list[str] = normalize_relay_urls(urls, limit)
        self._on_event = on_event
        self._verify = verify
        self._max_message_size = max_message_size
        self._open_timeout = open_timeout
        self._relays = [
            _Relay(i, url, Backoff(reconnect_delay, max_reconnect_delay), max_outbox)
            for i, url in enumerate(self.urls)
        ]
        self._subs: dict[str, _Subscription] = {}
        self._status_listeners: list[StatusCallback] = [] if on_status is None else [on_status]
        self._waiters: list[asyncio.Future[None]] = []
        self._started = False
        self._closing = False
        self._ws_logger = _DebugInfoLogger(logging.getLogger("gdbnb.relay_pool.ws"), {})

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting every relay (returns at once; see ``wait_open``)."""
        if self._started:
            return
        self._started = True
        for relay in self._relays:
            relay.task = asyncio.create_task(self._run(relay), name=f"relay {relay.url}")

    async def close(self) -> None:
        """Close every socket and stop reconnecting. Idempotent."""
        self._closing = True
        tasks = [r.task for r in self._relays if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._wake()

    async def __aenter__(self) -> RelayPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- state --------------------------------------------------------------------------------

    def is_open(self, index: int) -> bool:
        return self._relays[index].ws is not None

    def is_disabled(self, index: int) -> bool:
        """True once the relay asked for proof of work; it is never reconnected."""
        return self._relays[index].disabled

    def add_status_listener(self, listener: StatusCallback) -> Callable[[], None]:
        """Call ``listener(relay_index, is_open)`` on every open/close; returns a remover.

        Lets each room announce on a relay right after it (re)opens, after the REQs.
        """
        self._status_listeners.append(listener)

        def remove() -> None:
            if listener in self._status_listeners:
                self._status_listeners.remove(listener)

        return remove

    @property
    def open_relays(self) -> list[int]:
        return [r.index for r in self._relays if r.ws is not None]

    async def wait_open(self, index: int | None = None) -> None:
        """Wait until relay ``index`` (or any relay) is open; wrap in a timeout as needed."""
        while not (self.is_open(index) if index is not None else self.open_relays):
            if self._closing:
                raise ConnectionError("relay pool closed")
            await self._state_change()

    async def wait_closed(self, index: int) -> None:
        """Wait until relay ``index`` is not open."""
        while self.is_open(index):
            await self._state_change()

    def _state_change(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- subscriptions and publishing ---------------------------------------------------------

    def subscribe(self, sub_id: str, topic: str, kind: int | None = None) -> None:
        """Register ``["REQ", sub_id, {kinds, since, #x}]`` on every relay, now and on reopen."""
        sub = _Subscription(sub_id, topic, topic_kind(topic) if kind is None else kind)
        self._subs[sub_id] = sub
        for relay in self._relays:
            if relay.ws is not None:
                self._queue(relay, encode_req(sub.sub_id, sub.topic, now_s(), sub.kind))

    def unsubscribe(self, sub_id: str) -> None:
        """Forget a subscription and send ``CLOSE`` to the open relays (sockets stay open)."""
        if self._subs.pop(sub_id, None) is None:
            return
        for relay in self._relays:
            if relay.ws is not None:
                self._queue(relay, encode_close(sub_id))

    @property
    def subscriptions(self) -> list[str]:
        return list(self._subs)

    def publish(self, relay_index: int | None, event: dict[str, Any]) -> int:
        """Send ``["EVENT", event]`` to one relay or (None) to all; returns how many took it.

        Relays whose socket is not open are skipped silently.
        """
        text = encode_event(event)
        targets = self._relays if relay_index is None else [self._relays[relay_index]]
        return sum(self._queue(r, text) for r in targets if r.ws is not None)

    def _queue(self, relay: _Relay, text: str) -> bool:
        try:
            relay.outbox.put_nowait(text)
            return True
        except asyncio.QueueFull:
            logger.debug("relay %s: outbox full, message dropped", relay.url)
            return False

    # -- one relay ----------------------------------------------------------------------------

    async def _run(self, relay: _Relay) -> None:
        while not self._closing and not relay.disabled:
            try:
                async with connect(
                    relay.url,
                    max_size=self._max_message_size,
                    open_timeout=self._open_timeout,
                    close_timeout=2,
                    logger=self._ws_logger,
                ) as ws:
                    await self._serve(relay, ws)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
                logger.debug("relay %s: %s", relay.url, exc or type(exc).__name__)
            except Exception:  # e.g. an invalid URL: keep trying quietly, like the reference
                logger.debug("relay %s: connection failed", relay.url, exc_info=True)
            if self._closing or relay.disabled:
                break
            await asyncio.sleep(relay.backoff.next())

    async def _serve(self, relay: _Relay, ws: ClientConnection) -> None:
        relay.backoff.reset()
        while not relay.outbox.empty():  # anything left from an earlier socket is stale
            relay.outbox.get_nowait()
        relay.ws = ws
        since = now_s()
        for sub in self._subs.values():
            self._queue(relay, encode_req(sub.sub_id, sub.topic, since, sub.kind))
        writer = asyncio.create_task(self._drain(relay, ws))
        logger.info("relay %s up", relay.url)
        self._status(relay, True)
        try:
            async for message in ws:
                self._on_message(relay, message)
                if relay.disabled:
                    break
        except ConnectionClosed as exc:
            logger.debug("relay %s: %s", relay.url, exc)
        finally:
            relay.ws = None
            writer.cancel()
            if not self._closing:
                logger.info("relay %s down", relay.url)
            self._status(relay, False)

    @staticmethod
    async def _drain(relay: _Relay, ws: ClientConnection) -> None:
        try:
            while True:
                await ws.send(await relay.outbox.get())
        except ConnectionClosed:
            pass

    def _status(self, relay: _Relay, up: bool) -> None:
        self._wake()
        for listener in list(self._status_listeners):
            try:
                listener(relay.index, up)
            except Exception:
                logger.exception("relay pool: status listener failed")

    def _on_message(self, relay: _Relay, message: str | bytes) -> None:
        msg = parse_relay_message(message)
        if isinstance(msg, RelayEvent):
            if msg.sub_id not in self._subs:
                return
            if self._verify and not verify_event(msg.event):
                logger.debug("relay %s: dropped an event that does not verify", relay.url)
                return
            try:
                self._on_event(relay.index, msg.sub_id, msg.event)
            except Exception:
                logger.exception("relay pool: on_event callback failed")
        elif isinstance(msg, (RelayNotice, RelayOk)):
            bits = pow_bits_needed(msg.message)
            if bits > 0:
                relay.disabled = True
                logger.info(
                    "relay %s requires proof of work (%d bits); not used again", relay.url, bits
                )
