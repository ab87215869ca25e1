"""GenosRTC framing: messages <-> data-channel frames (sync-protocol.md §3, §4). Sans-I/O.

Sending: ``encode_message`` turns one ``channel.send(value, meta)`` into its frames (the nonce comes
from a ``NonceCounter``). Receiving: one ``FrameAssembler`` per peer connection turns frames back
into ``Message`` objects. Everything a peer sends is bounded; a frame or message that breaks a
bound or the format is dropped and reported through ``on_error`` / ``error_counts``, never raised.
"""

from __future__ import annotations

import enum
import math
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Literal

from ..core.node import MISSING
from ..errors import ProtocolError
from .jsjson import DEFAULT_MAX_DEPTH, decode_utf8, encode_utf8, js_dumps, js_loads

__all__ = [
    "HEADER_LEN",
    "ACTION_LEN",
    "MAX_FRAME",
    "CHUNK",
    "MAX_CHUNKS",
    "COMPRESS_THRESHOLD",
    "Flag",
    "MessageTooLarge",
    "Message",
    "NonceCounter",
    "FrameAssembler",
    "encode_message",
    "encode_raw",
    "inflate",
    "DEFAULT_MAX_INFLATED",
    "ping_frame",
    "pong_frame",
    "leave_frame",
]

HEADER_LEN = 15
ACTION_LEN = 12
MAX_FRAME = 16384
CHUNK = MAX_FRAME - HEADER_LEN  # 16369 payload bytes per frame
MAX_CHUNKS = 100
COMPRESS_THRESHOLD = 512


class Flag(enum.IntFlag):
    """Bits of header byte 13 (§3.2)."""

    LAST = 0x01  # last chunk of the message
    META = 0x02  # this chunk is the JSON metadata (chunk 0 of a binary message)
    BINARY = 0x04  # payload is raw bytes
    NOT_TEXT = 0x08  # payload is not a string: JSON, or binary
    ZLIB = 0x10  # the concatenated data chunks are a zlib stream


_LAST, _META, _BINARY, _NOT_TEXT, _ZLIB = (int(f) for f in Flag)
_RESERVED = 0xE0
_MESSAGE_FLAGS = _BINARY | _NOT_TEXT | _ZLIB


class MessageTooLarge(ProtocolError):
    """The message needs more than ``MAX_CHUNKS`` frames; GenosRTC refuses to send it too."""


@dataclass(frozen=True, slots=True)
class Message:
    """One reassembled message.

    ``value`` is ``bytes`` (kind ``binary``), the parsed JSON (``json``) or ``str`` (``text``).
    ``wire_bytes`` counts every byte of its frames, headers included.
    """

    action: str
    nonce: int
    value: Any
    kind: Literal["json", "text", "binary"]
    meta: Any = None
    compressed: bool = False
    wire_bytes: int = 0


# --------------------------------------------------------------------------------------------
# sending


def _action_bytes(action: str) -> bytes:
    raw = action.encode("utf-8")
    if not raw or len(raw) > ACTION_LEN or b"\0" in raw:
        raise ValueError(f"action name must be 1-{ACTION_LEN} UTF-8 bytes without NUL: {action!r}")
    return raw.ljust(ACTION_LEN, b"\0")


def _progress(i: int, n: int) -> int:
    return math.floor((i + 1) / n * 255 + 0.5)  # JS Math.round on a non-negative number


def encode_raw(
    action: str, nonce: int, flags: int, payload: bytes, meta_bytes: bytes | None = None
) -> list[bytes]:
    """Cut already-encoded payload bytes into frames.

    ``flags`` are the message's type bits (``BINARY | NOT_TEXT | ZLIB``); ``LAST`` and ``META``
    are set per frame here. ``meta_bytes`` (JSON text) goes first, in a frame of its own.
    """
    head = _action_bytes(action)
    if not 0 <= nonce <= 255:
        raise ValueError(f"nonce must be 0-255: {nonce}")
    if flags & ~_MESSAGE_FLAGS:
        raise ValueError(f"flags may only hold BINARY, NOT_TEXT and ZLIB: {flags:#x}")
    if meta_bytes is not None and len(meta_bytes) > CHUNK:
        raise MessageTooLarge(f"metadata of {len(meta_bytes)} bytes does not fit in one frame")
    skip = 0 if meta_bytes is None else 1
    n = max(1, -(-len(payload) // CHUNK) + skip)
    if n > MAX_CHUNKS:
        raise MessageTooLarge(f"message needs {n} frames, GenosRTC allows {MAX_CHUNKS}")
    head += bytes((nonce,))
    frames = []
    for i in range(n):
        bits = flags | (_LAST if i == n - 1 else 0)
        if i < skip:
            bits |= _META
            part = meta_bytes
        else:
            part = payload[(i - skip) * CHUNK : (i - skip + 1) * CHUNK]
        frames.append(head + bytes((bits, _progress(i, n))) + part)  # type: ignore[operator]
    return frames


def encode_message(
    action: str, nonce: int, value: Any, *, meta: dict[str, Any] | None = None, compress: bool = True
) -> list[bytes]:
    """The frames of ``channel.send(value, meta)`` (§3.4).

    ``str`` goes as text, ``bytes``/``bytearray``/``memoryview`` as binary (never compressed),
    anything else as JSON (``js_dumps``). Text and JSON of at least ``COMPRESS_THRESHOLD`` bytes
    are zlib-compressed (level 6, what Chromium produces) when that makes them smaller. ``meta``
    is only allowed with binary values. Raises ValueError (bad action, nonce, value or meta) and
    MessageTooLarge.
    """
    binary = isinstance(value, (bytes, bytearray, memoryview))
    if binary:
        payload, flags = bytes(value), _BINARY | _NOT_TEXT
    elif isinstance(value, str):
        payload, flags = encode_utf8(value), 0
    elif value is MISSING:
        raise ValueError("cannot send MISSING (JS undefined)")
    else:
        payload, flags = js_dumps(value).encode("utf-8"), _NOT_TEXT
    meta_bytes = None
    if meta is not None:
        if not binary or not isinstance(meta, dict):
            raise ValueError("meta must be a dict and is only sent with a binary value")
        meta_bytes = js_dumps(meta).encode("utf-8")
    if compress and not binary and len(payload) >= COMPRESS_THRESHOLD:
        packed = zlib.compress(payload)
        if len(packed) < len(payload):
            payload, flags = packed, flags | _ZLIB
    return encode_raw(action, nonce, flags, payload, meta_bytes)


def _control_frame(action: str, nonce: int) -> bytes:
    return encode_raw(action, nonce, 0, b"")[0]


def ping_frame(nonce: int) -> bytes:
    """``@_ping`` (empty text), sent to a peer quiet for 10 s (§4.1)."""
    return _control_frame("@_ping", nonce)


def pong_frame(nonce: int) -> bytes:
    """``@_pong``: ``nonce`` is the replier's own ``@_pong`` counter, not the ping's."""
    return _control_frame("@_pong", nonce)


def leave_frame(nonce: int) -> bytes:
    """``@_leave``, sent to every connection before leaving a room (§4.2)."""
    return _control_frame("@_leave", nonce)


class NonceCounter:
    """The sender's 8-bit per-action message counter (§3.3): starts at 0, wraps at 256.

    Take one nonce per ``send``, even when no peer is connected.
    """

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, action: str) -> int:
        nonce = self._next.get(action, 0)
        self._next[action] = (nonce + 1) & 255
        return nonce


# --------------------------------------------------------------------------------------------
# receiving

#: Default bound on the size of an inflated message or file.
DEFAULT_MAX_INFLATED = 64 * 1024 * 1024


def inflate(data: bytes, max_bytes: int = DEFAULT_MAX_INFLATED, *, wbits: int = zlib.MAX_WBITS) -> bytes:
    """Inflate one complete zlib stream (``wbits=47``: zlib or gzip, like pako) of at most
    ``max_bytes``. Decompression stops at the bound, so a bomb costs no more than that.
    Raises ProtocolError when the stream is corrupt, truncated, followed by junk or too big."""
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise ProtocolError(f"corrupt zlib stream: {e}") from None
    if len(out) > max_bytes:
        raise ProtocolError(f"inflates to more than {max_bytes} bytes")
    if not d.eof or d.unused_data:
        raise ProtocolError("zlib stream truncated or followed by extra bytes")
    return out



@dataclass(slots=True)
class _Partial:
    touched: float
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    wire_bytes: int = 0
    meta: bytes | None = None


class FrameAssembler:
    """Reassembles the frames of one peer connection into ``Message`` objects (§3.6).

    Bounds (all per connection):

    * ``max_message_bytes``: payload bytes of one message (metadata included) before inflating
      (default ``MAX_CHUNKS * CHUNK`` = 1 636 900, what a GenosRTC sender can produce), and at
      most ``MAX_CHUNKS`` data chunks;
    * ``max_inflated_bytes``: size after inflating (default ``DEFAULT_MAX_INFLATED``, 64 MiB);
      inflating stops there, so a decompression bomb costs at most that much memory;
    * ``max_in_flight``: partial messages kept at once (default 8); the least recently fed
      one is dropped to make room. The rest of a message dropped midway is swallowed up to its
      last frame, so its tail is never mistaken for a message of its own;
    * ``stale_after``: seconds without a frame after which a partial message is dropped
      (default 30, measured with ``clock``);
    * ``max_json_depth``: array/object nesting of JSON payloads and metadata (default
      ``DEFAULT_MAX_DEPTH``).

    Frames shorter than the header, with reserved flag bits, with an empty action name or an
    action outside ``actions`` (when given) are dropped. Every drop calls
    ``on_error(reason, detail)`` and counts in ``error_counts[reason]``; ``feed`` never raises.
    Reasons: ``short-frame``, ``bad-flags``, ``unknown-action``, ``too-large``,
    ``in-flight-limit``, ``stale``, ``bad-zlib`` (corrupt, or over ``max_inflated_bytes``),
    ``bad-json``, ``bad-meta``.
    """

    def __init__(
        self,
        actions: Collection[str] | None = None,
        *,
        max_message_bytes: int = MAX_CHUNKS * CHUNK,
        max_inflated_bytes: int = DEFAULT_MAX_INFLATED,
        max_in_flight: int = 8,
        stale_after: float = 30.0,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
        on_error: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.actions = None if actions is None else frozenset(actions)
        self.max_message_bytes = max_message_bytes
        self.max_inflated_bytes = max_inflated_bytes
        self.max_in_flight = max_in_flight
        self.stale_after = stale_after
        self.max_json_depth = max_json_depth
        self.on_error = on_error
        self.error_counts: Counter[str] = Counter()
        self._clock = clock
        self._pending: dict[tuple[str, int], _Partial] = {}  # least recently fed first
        self._discarding: dict[tuple[str, int], float] = {}  # dropped midway -> last frame time

    def _drop(self, reason: str, detail: str) -> None:
        self.error_counts[reason] += 1
        if self.on_error is not None:
            self.on_error(reason, detail)

    def feed(self, frame: bytes | bytearray | memoryview) -> list[Message]:
        """Take one data-channel message; return the message it completes, if any."""
        frame = bytes(frame)
        if len(frame) < HEADER_LEN:
            self._drop("short-frame", f"{len(frame)} bytes")
            return []
        action = decode_utf8(frame[:ACTION_LEN]).replace("\0", "")
        if not action or (self.actions is not None and action not in self.actions):
            self._drop("unknown-action", repr(action))
            return []
        nonce, flags = frame[12], frame[13]
        if flags & _RESERVED:
            self._drop("bad-flags", f"{action} flags {flags:#04x}")
            return []
        now = self._clock()
        self._expire(now)
        key = (action, nonce)
        if key in self._discarding:  # the rest of a message dropped midway
            if flags & _LAST:
                del self._discarding[key]
            else:
                self._discarding[key] = now
            return []
        st = self._pending.pop(key, None)
        if st is None:
            if len(self._pending) >= self.max_in_flight:
                old = next(iter(self._pending))
                self._discard(old, now)
                self._drop("in-flight-limit", f"{old[0]}#{old[1]} dropped for {action}#{nonce}")
            st = _Partial(now)
        self._pending[key] = st  # (re)inserted last: most recently fed
        st.touched = now
        st.wire_bytes += len(frame)
        data = frame[HEADER_LEN:]
        if flags & _META:
            st.meta = data
        else:
            st.chunks.append(data)
        st.size += len(data)
        if st.size > self.max_message_bytes or len(st.chunks) > MAX_CHUNKS:
            limits = f"{self.max_message_bytes} bytes or {MAX_CHUNKS} chunks"
            self._drop("too-large", f"{action}#{nonce}: over {limits}")
            if not flags & _LAST:
                self._discard(key, now)
            else:
                del self._pending[key]
            return []
        if not flags & _LAST:
            return []
        del self._pending[key]
        message = self._decode(action, nonce, flags, st)
        return [] if message is None else [message]

    def _discard(self, key: tuple[str, int], now: float) -> None:
        """Forget a partial message and swallow its remaining frames (until its last one)."""
        self._pending.pop(key, None)
        self._discarding[key] = now
        if len(self._discarding) > self.max_in_flight:
            del self._discarding[next(iter(self._discarding))]

    def _expire(self, now: float) -> None:
        for key, touched in list(self._discarding.items()):
            if now - touched > self.stale_after:
                del self._discarding[key]
        while self._pending:
            key, st = next(iter(self._pending.items()))
            if now - st.touched <= self.stale_after:
                return
            del self._pending[key]  # its sender is gone or stuck: its nonce may come back fresh
            self._drop("stale", f"{key[0]}#{key[1]} incomplete for {self.stale_after} s")

    def _decode(self, action: str, nonce: int, flags: int, st: _Partial) -> Message | None:
        where = f"{action}#{nonce}"
        body = b"".join(st.chunks)
        if flags & _ZLIB:
            try:
                body = inflate(body, self.max_inflated_bytes)
            except ProtocolError as e:
                self._drop("bad-zlib", f"{where}: {e}")
                return None
        meta = None
        if st.meta is not None:
            try:
                meta = js_loads(st.meta, max_depth=self.max_json_depth)
            except ProtocolError as e:
                self._drop("bad-meta", f"{where}: {e}")
                return None
        value: Any
        if flags & _BINARY:
            value, kind = body, "binary"
        elif flags & _NOT_TEXT:
            try:
                value = js_loads(body, max_depth=self.max_json_depth)
            except ProtocolError as e:
                self._drop("bad-json", f"{where}: {e}")
                return None
            kind = "json"
        else:
            value, kind = decode_utf8(body), "text"
        compressed = bool(flags & _ZLIB)
        return Message(action, nonce, value, kind, meta, compressed, st.wire_bytes)  # type: ignore[arg-type]
