"""MessagePack as @msgpack/msgpack writes it, and the legacy sync encodings (§5.7)."""

from __future__ import annotations

import gzip
import zlib
from datetime import datetime, timezone
from typing import Any

import msgpack
import pytest

from gdbnb.core.hlc import Timestamp
from gdbnb.core.node import MISSING
from gdbnb.errors import ProtocolError
from gdbnb.wire.jsjson import js_dumps, js_loads
from gdbnb.wire.legacy import (
    decode_legacy_sync,
    js_msgpack_packb,
    msgpack_unpackb,
    pack_deflated,
    unpack_deflated,
)


@pytest.mark.parametrize(
    "value, hexed",
    [
        (1, "01"),
        (2.0, "02"),  # JS has one number type
        (-0.0, "00"),
        (200, "ccc8"),
        (-200, "d1ff38"),
        (-33, "d0df"),
        (70000, "ce00011170"),
        (5_000_000_000, "cf000000012a05f200"),
        (-5_000_000_000, "d3fffffffed5fa0e00"),
        (1.5, "cb3ff8000000000000"),
        (2**53, "cb4340000000000000"),  # unsafe integer: float64
        (None, "c0"),
        (MISSING, "c0"),
        ("x" * 40, "d928" + "78" * 40),
        (b"\x01", "c40101"),
        ({"b": 1, "1": 2}, "82a13102a16201"),  # JS key order
        ({"k": MISSING}, "81a16bc0"),  # undefined kept as nil
        (Timestamp(1, 2), "82a8706879736963616c01a76c6f676963616c02"),
        ((1, 2), "920102"),
    ],
)
def test_pack(value: Any, hexed: str) -> None:
    assert js_msgpack_packb(value).hex() == hexed


def test_unpack_like_js() -> None:
    packed = msgpack.packb({1: "a", "b": {2.5: True}, "0": 0})
    assert list(msgpack_unpackb(packed)) == ["0", "1", "b"]
    assert msgpack_unpackb(packed)["b"] == {"2.5": True}
    date = msgpack.packb(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc), datetime=True)
    assert msgpack_unpackb(date) == "2026-01-02T03:04:05.678Z"  # Date.toJSON
    for bad in [b"\xc1", b"\x92\x01", b"\x01\x02", msgpack.packb(msgpack.ExtType(5, b"x")),
                msgpack.packb({b"k": 1}, use_bin_type=True), b"\xdd\xff\xff\xff\xff"]:
        with pytest.raises(ProtocolError):
            msgpack_unpackb(bad)
    deep = b"\x91" * 300 + b"\x01"
    with pytest.raises(ProtocolError):
        msgpack_unpackb(deep)
    assert msgpack_unpackb(deep, max_depth=300) is not None
    with pytest.raises(ProtocolError):
        msgpack_unpackb(b"\x91" * 5000 + b"\x01", max_depth=10_000)  # the decoder's own stack limit


def test_deflated_roundtrip_and_bounds() -> None:
    nodes = {"n1": {"id": "n1", "value": {"x": 1.5}, "edges": ["n2"], "timestamp": {"physical": 1, "logical": 0}}}
    data = pack_deflated(nodes)
    assert data[:2] == b"\x78\x9c"
    assert unpack_deflated(data) == nodes
    assert unpack_deflated(gzip.compress(js_msgpack_packb(nodes))) == nodes  # pako auto-detects gzip
    bomb = zlib.compress(msgpack.packb("a" * 5_000_000))
    with pytest.raises(ProtocolError):
        unpack_deflated(bomb, max_inflated_bytes=1_000_000)
    with pytest.raises(ProtocolError):
        unpack_deflated(b"garbage")


def test_decode_legacy_sync_shapes() -> None:
    op = {"type": "upsert", "id": "a", "value": {"v": 1}, "timestamp": {"physical": 5, "logical": 1}}
    sync = {"type": "sync", "timestamp": None}
    assert decode_legacy_sync([sync, 3, "x", op]) == [sync, op]  # non-objects skipped
    assert decode_legacy_sync(op) == [op]
    assert decode_legacy_sync(js_msgpack_packb(op)) == [op]
    deflated = pack_deflated([op])
    as_bytes = js_msgpack_packb([{"type": "deltaSync", "operations": deflated, "timestamp": None}])
    (delta,) = decode_legacy_sync(as_bytes)
    assert delta == {"type": "deltaSync", "operations": [op], "timestamp": None}
    # a Uint8Array through JSON.stringify, keys possibly out of order
    as_object = js_loads(js_dumps([{"type": "deltaSync", "operations": deflated, "timestamp": None}]))
    as_object[0]["operations"] = dict(reversed(list(as_object[0]["operations"].items())))
    assert decode_legacy_sync(as_object)[0]["operations"] == [op]
    plain = [{"type": "deltaSync", "operations": [op], "timestamp": None}]
    assert decode_legacy_sync(plain) == plain


@pytest.mark.parametrize(
    "payload",
    [
        5,
        "text",
        [{"type": "deltaSync", "operations": {"0": 120, "x": 1}}],
        [{"type": "deltaSync", "operations": {"0": 300}}],
        [{"type": "deltaSync", "operations": {"0": 1.5}}],
        [{"type": "deltaSync", "operations": {"0": 120, "1": 156}}],  # truncated zlib
        [{"type": "deltaSync", "operations": zlib.compress(b"\xc1")}],
        b"\xc1",
    ],
)
def test_decode_legacy_sync_refuses(payload: Any) -> None:
    with pytest.raises(ProtocolError):
        decode_legacy_sync(payload)
