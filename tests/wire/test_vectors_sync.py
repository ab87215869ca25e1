"""Every frame captured from real peers (shared/spec/vectors/sync, sync-protocol.md §14):
decoded to its ``decoded`` value, and rebuilt byte for byte."""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any, Iterator

import pytest

from gdbnb.wire.framing import HEADER_LEN, FrameAssembler, encode_message, encode_raw
from gdbnb.wire.jsjson import encode_utf8, js_dumps
from gdbnb.wire.legacy import (
    decode_legacy_sync,
    js_msgpack_packb,
    msgpack_unpackb,
    pack_deflated,
    unpack_deflated,
)

from ..vectors import vectors_dir


_SYNC = vectors_dir("sync")
VECTORS = _SYNC.parent if _SYNC else None
pytestmark = pytest.mark.skipif(VECTORS is None, reason="shared/spec/vectors not found (set GDBNB_SHARED_DIR)")
SYNC_FILES = sorted((VECTORS / "sync").glob("*.json")) if VECTORS else []


def _frame_events(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("events", "vectors", "messages"):
        for e in doc.get(key, []):
            if "frames" in e:
                yield e


def _cases() -> list[Any]:
    out = []
    for path in SYNC_FILES:
        doc = json.loads(path.read_text())
        for i, e in enumerate(_frame_events(doc)):
            out.append(pytest.param(e, id=f"{path.stem}-{i}-{e.get('name', e['action'])}"))
    return out


CASES = _cases()


def _frames(e: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(h) for h in e["frames"]]


def _body(e: dict[str, Any]) -> bytes:
    """The message payload after inflating (metadata chunk excluded)."""
    data = b"".join(f[HEADER_LEN:] for f in _frames(e) if not f[13] & 0x02)
    return zlib.decompress(data) if e["compressed"] else data


def _sent_value(e: dict[str, Any]) -> Any:
    """What the sender passed to channel.send()."""
    kind = e["payloadKind"]
    if kind == "binary":
        return bytes.fromhex(e["decoded"])
    if kind == "binary-msgpack":
        return js_msgpack_packb(e["decoded"])
    return e["decoded"]


def test_vectors_present() -> None:
    assert len(CASES) == 376  # sync-protocol.md §13: 376 messages in the vector files


@pytest.mark.parametrize("e", CASES)
def test_decode(e: dict[str, Any]) -> None:
    errors: list[tuple[str, str]] = []
    fa = FrameAssembler(on_error=lambda *a: errors.append(a))
    messages = [m for f in _frames(e) for m in fa.feed(f)]
    assert errors == [] and len(messages) == 1
    m = messages[0]
    assert (m.action, m.nonce, m.compressed) == (e["action"], int(e["nonce"]), e["compressed"])
    assert m.meta == e.get("meta")
    assert m.wire_bytes == sum(map(len, _frames(e)))
    kind = e["payloadKind"]
    expected_kind = {"binary-msgpack": "binary", "text-cells-envelope": "text"}.get(kind, kind)
    assert m.kind == expected_kind
    value = m.value
    if kind == "binary":
        value = value.hex()
    elif kind == "binary-msgpack":
        value = msgpack_unpackb(value)
    assert value == e["decoded"]
    if "inflatedSha256" in e:
        assert hashlib.sha256(_body(e)).hexdigest() == e["inflatedSha256"]


@pytest.mark.parametrize("e", CASES)
def test_payload_reserialized(e: dict[str, Any]) -> None:
    kind, body = e["payloadKind"], _body(e)
    if kind == "json":
        assert js_dumps(e["decoded"]).encode() == body
        assert js_dumps(json.loads(body)).encode() == body
    elif kind == "binary-msgpack":
        assert js_msgpack_packb(e["decoded"]) == body
    elif kind == "binary":
        assert bytes.fromhex(e["decoded"]) == body
    else:
        assert encode_utf8(e["decoded"]) == body
        if kind == "text-cells-envelope":
            assert js_dumps(json.loads(body)).encode() == body


@pytest.mark.parametrize("e", CASES)
def test_frames_rebuilt(e: dict[str, Any]) -> None:
    frames = _frames(e)
    action, nonce = e["action"], int(e["nonce"])
    if not e["compressed"]:
        assert encode_message(action, nonce, _sent_value(e), meta=e.get("meta")) == frames
        return
    deflated = b"".join(f[HEADER_LEN:] for f in frames)
    assert encode_raw(action, nonce, frames[-1][13] & 0x1C, deflated) == frames
    if zlib.compress(_body(e)) == deflated:  # compressed by Chromium or CPython
        assert encode_message(action, nonce, _sent_value(e)) == frames


def test_chromium_compression_is_cpython_zlib() -> None:
    """§3.5: Chromium's CompressionStream output equals CPython zlib.compress (7 of 7)."""
    from_chromium = [e for e in (c.values[0] for c in CASES) if e["compressed"] and "chrom" in e.get("from", "").lower()]
    assert len(from_chromium) == 7
    for e in from_chromium:
        assert encode_message(e["action"], int(e["nonce"]), e["decoded"]) == _frames(e)


def _sync_messages() -> dict[str, dict[str, Any]]:
    doc = json.loads((VECTORS / "sync" / "sync-messages.json").read_text())  # type: ignore[operator]
    return {v["name"]: v for v in doc["vectors"]}


def test_legacy_msgpack_frame() -> None:
    v = _sync_messages()["legacy-msgpack-frame"]
    packed = bytes.fromhex(v["msgpackHex"])
    assert msgpack_unpackb(packed) == v["decoded"]
    assert js_msgpack_packb(v["decoded"]) == packed
    assert decode_legacy_sync(packed) == v["decoded"]


def test_legacy_operations_object() -> None:
    v = _sync_messages()["legacy-deltaSync-operations-object"]
    deflated = bytes.fromhex(v["operationsZlibHex"])
    packed = bytes.fromhex(v["operationsMsgpackHex"])
    ops = v["operationsDecoded"]
    assert js_msgpack_packb(ops) == packed
    assert pack_deflated(ops) == deflated  # pako.deflate == CPython zlib.compress (§13)
    assert unpack_deflated(deflated) == ops
    (msg,) = decode_legacy_sync(v["decoded"])
    assert msg["operations"] == ops
    assert msg["timestamp"] == v["decoded"][0]["timestamp"]
    # the same operations as bytes inside a msgpack frame (legacy encoding 2)
    frame = js_msgpack_packb([{"type": "deltaSync", "operations": deflated, "timestamp": None}])
    assert decode_legacy_sync(frame)[0]["operations"] == ops


def test_single_object_frame_is_wrapped() -> None:
    v = _sync_messages()["single-object-frame"]
    assert decode_legacy_sync(v["decoded"]) == [v["decoded"]]
