"""MessagePack the way ``@msgpack/msgpack`` writes it, and the legacy sync encodings (§5.7).

GenosDB 0.25 never sends msgpack on the wire but still accepts three older encodings on
``syncGraph``; ``decode_legacy_sync`` turns any of them into the plain list of message dicts.
The same ``zlib(msgpack(…))`` format is the genosdb-server graph file (``pack_deflated`` /
``unpack_deflated``).
"""

from __future__ import annotations

import math
import zlib
from datetime import datetime
from typing import Any

import msgpack

from ..core.hlc import Timestamp
from ..core.node import MISSING
from ..errors import ProtocolError
from .framing import DEFAULT_MAX_INFLATED, inflate
from .jsjson import DEFAULT_MAX_DEPTH, is_array_index, js_key, js_object

__all__ = [
    "js_msgpack_packb",
    "msgpack_unpackb",
    "pack_deflated",
    "unpack_deflated",
    "decode_legacy_sync",
]

_MAX_SAFE = 2**53 - 1
_ZLIB_OR_GZIP = 32 + zlib.MAX_WBITS


# --------------------------------------------------------------------------------------------
# packing


def _js_value(o: Any) -> Any:
    """``o`` with the types and number forms a JS encoder would see (a copy)."""
    t = type(o)
    if t is str or t is bool or o is None or t is bytes:
        return o
    if t is int:
        if -_MAX_SAFE <= o <= _MAX_SAFE:
            return o
        try:
            return _js_value(float(o))  # a JS number: a double
        except OverflowError:
            return math.copysign(math.inf, o)
    if t is float:
        # JS has one number type: integral doubles are written as ints (-0 as 0).
        return int(o) if o.is_integer() and -_MAX_SAFE <= o <= _MAX_SAFE else o
    if t is dict:
        return {k: _js_value(v) for k, v in js_object(o).items()}
    if t is list:
        return [_js_value(v) for v in o]
    if o is MISSING:
        return None  # undefined is nil, and kept as a key (ignoreUndefined is false)
    if isinstance(o, Timestamp):
        return {"physical": _js_value(o.physical), "logical": _js_value(o.logical)}
    if isinstance(o, bool):
        return bool(o)
    if isinstance(o, int):
        return _js_value(int(o))
    if isinstance(o, float):
        return _js_value(float(o))
    if isinstance(o, str):
        return str(o)
    if isinstance(o, (bytes, bytearray, memoryview)):
        return bytes(o)
    if isinstance(o, dict):
        return _js_value(dict(o))
    if isinstance(o, (list, tuple)):
        return [_js_value(v) for v in o]
    if isinstance(o, (set, frozenset)):  # a JS Set or Map encodes as an empty map
        return {}
    raise TypeError(f"{type(o).__name__} has no MessagePack form")


def js_msgpack_packb(value: Any) -> bytes:
    """``encode(value)`` of ``@msgpack/msgpack`` with default options, byte for byte.

    Safe integers (and integral floats) take the smallest int form, other numbers float64;
    strings are str8/16/32, bytes bin; maps keep JS key order; MISSING is nil.
    """
    # surrogatepass: the JS encoder writes a lone surrogate as its 3 UTF-8-like bytes.
    return msgpack.packb(_js_value(value), use_bin_type=True, unicode_errors="surrogatepass")


def pack_deflated(value: Any) -> bytes:
    """``pako.deflate(encode(value))``: the genosdb-server file format and legacy operations."""
    return zlib.compress(js_msgpack_packb(value))


# --------------------------------------------------------------------------------------------
# unpacking


def _key(k: Any) -> str:
    if isinstance(k, (bytes, bool)) or k is None:  # the JS decoder takes strings and numbers only
        raise ProtocolError(f"MessagePack map key of type {type(k).__name__}")
    return js_key(k)


def _date_json(d: datetime) -> str:
    """``Date.prototype.toJSON``: the timestamp extension as a JS peer would re-send it."""
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _as_js(o: Any, depth: int, max_depth: int) -> Any:
    """Decoded msgpack -> what the JS decoder yields: string keys in JS order, Dates as JSON."""
    if isinstance(o, dict):
        if depth >= max_depth:
            raise ProtocolError(f"MessagePack nests deeper than {max_depth}")
        return js_object({_key(k): _as_js(v, depth + 1, max_depth) for k, v in o.items()})
    if isinstance(o, list):
        if depth >= max_depth:
            raise ProtocolError(f"MessagePack nests deeper than {max_depth}")
        return [_as_js(v, depth + 1, max_depth) for v in o]
    if isinstance(o, datetime):
        return _date_json(o)
    return o


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"MessagePack extension type {code}")


def msgpack_unpackb(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode one MessagePack value like ``@msgpack/msgpack``'s ``decode``.

    Raises ProtocolError on malformed or trailing bytes, extension types other than the
    timestamp, map keys that are not strings or numbers, and nesting deeper than ``max_depth``.
    Lengths announced in the data are bounded by the data's size.
    """
    n = len(data)
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            timestamp=3,  # datetime
            ext_hook=_refuse_ext,
            max_str_len=n,
            max_bin_len=n,
            max_array_len=n,
            max_map_len=n,
            max_ext_len=n,
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as e:  # includes StackError, ExtraData
        raise ProtocolError(f"malformed MessagePack: {e!r}") from None
    return _as_js(value, 0, max_depth)


def unpack_deflated(
    data: bytes, *, max_inflated_bytes: int = DEFAULT_MAX_INFLATED, max_depth: int = DEFAULT_MAX_DEPTH
) -> Any:
    """``decode(pako.inflate(data))``: zlib or gzip, inflated size bounded."""
    return msgpack_unpackb(inflate(data, max_inflated_bytes, wbits=_ZLIB_OR_GZIP), max_depth=max_depth)


# --------------------------------------------------------------------------------------------
# legacy syncGraph messages


def _byte_object(obj: dict[str, Any]) -> bytes:
    """``new Uint8Array(Object.values(obj))`` for a Uint8Array that went through JSON."""
    if not all(is_array_index(k) for k in obj):
        raise ProtocolError("operations object has non-index keys")
    values = [obj[k] for k in sorted(obj, key=int)]
    if not all(type(v) is int and 0 <= v <= 255 for v in values):
        raise ProtocolError("operations object holds values that are not bytes")
    return bytes(values)


def _as_messages(value: Any) -> list[dict[str, Any]]:
    """A message array, or a bare message (wrapped); non-object elements are skipped."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [m for m in value if isinstance(m, dict)]
    raise ProtocolError(f"sync payload is a {type(value).__name__}, not messages")


def decode_legacy_sync(
    value: Any, *, max_inflated_bytes: int = DEFAULT_MAX_INFLATED, max_depth: int = DEFAULT_MAX_DEPTH
) -> list[dict[str, Any]]:
    """The list of message dicts carried by a ``syncGraph`` payload, in any accepted encoding.

    ``value`` is the decoded payload of a ``syncGraph`` message: ``bytes`` for a binary frame
    (msgpack of the array or of one message), else the parsed JSON (an array, or one bare
    message). A ``deltaSync`` whose ``operations`` are bytes (zlib/gzip of msgpack) or a
    JSON-serialized Uint8Array (``{"0":b0,"1":b1,…}``) gets them decoded to a list. Raises
    ProtocolError when an encoding is broken.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = msgpack_unpackb(bytes(value), max_depth=max_depth)
    messages = _as_messages(value)
    out = []
    for msg in messages:
        ops = msg.get("operations")
        if msg.get("type") == "deltaSync" and isinstance(ops, (bytes, dict)):
            packed = ops if isinstance(ops, bytes) else _byte_object(ops)
            decoded = unpack_deflated(packed, max_inflated_bytes=max_inflated_bytes, max_depth=max_depth)
            msg = {**msg, "operations": _as_messages(decoded)}
        out.append(msg)
    return out
