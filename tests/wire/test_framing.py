"""GenosRTC framing (sync-protocol.md §3, §4): encoder details and the assembler's bounds."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from gdbnb.errors import ProtocolError
from gdbnb.wire.framing import (
    CHUNK,
    HEADER_LEN,
    MAX_CHUNKS,
    Flag,
    FrameAssembler,
    Message,
    MessageTooLarge,
    NonceCounter,
    encode_message,
    encode_raw,
    inflate,
    leave_frame,
    ping_frame,
    pong_frame,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def assembler(**kw: Any) -> tuple[FrameAssembler, list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    return FrameAssembler(on_error=lambda *e: errors.append(e), **kw), errors


def feed_all(fa: FrameAssembler, frames: list[bytes]) -> list[Message]:
    return [m for f in frames for m in fa.feed(f)]


def test_control_frames() -> None:
    assert ping_frame(0).hex() == "405f70696e670000000000000001ff"
    assert pong_frame(3).hex() == "405f706f6e670000000000000301ff"
    assert leave_frame(0).hex() == "405f6c6561766500000000000001ff"
    fa, errors = assembler()
    (m,) = fa.feed(ping_frame(7))
    assert (m.action, m.nonce, m.value, m.kind, m.wire_bytes) == ("@_ping", 7, "", "text", 15)


def test_kinds_and_flags() -> None:
    assert encode_message("probe", 0, "hello")[0][13] == 0x01
    assert encode_message("probe", 1, {"a": 1})[0][13] == 0x09
    assert encode_message("probe", 1, None)[0][HEADER_LEN:] == b"null"
    frames = encode_message("probe", 2, b"\x01\x02", meta={"name": "x"})
    assert [f[13] for f in frames] == [0x0E, 0x0D] and [f[14] for f in frames] == [128, 255]
    assert [f[13] for f in encode_message("p", 0, b"", meta={})] == [0x0F]  # meta only
    assert Flag.LAST | Flag.NOT_TEXT == 0x09
    fa, errors = assembler()
    (m,) = feed_all(fa, frames)
    assert (m.value, m.kind, m.meta) == (b"\x01\x02", "binary", {"name": "x"})
    (m,) = fa.feed(encode_message("probe", 3, bytearray(b"z"))[0])
    assert m.value == b"z" and errors == []


def test_compression_threshold() -> None:
    small = {"k": "b" * 503}  # 511 bytes of JSON
    big = {"k": "b" * 504}
    assert encode_message("p", 0, small)[0][13] == 0x09
    frame = encode_message("p", 0, big)[0]
    assert frame[13] == 0x19 and zlib.decompress(frame[HEADER_LEN:]) == b'{"k":"' + b"b" * 504 + b'"}'
    assert encode_message("p", 0, big, compress=False)[0][13] == 0x09
    assert encode_message("p", 0, "a" * 600)[0][13] == 0x11
    assert encode_message("p", 0, bytes(600))[0][13] == 0x0D  # binary never compressed


def test_chunking_and_progress() -> None:
    frames = encode_message("probe", 3, bytes(40000))
    assert [len(f) - HEADER_LEN for f in frames] == [CHUNK, CHUNK, 40000 - 2 * CHUNK]
    assert [f[13:15].hex() for f in frames] == ["0c55", "0caa", "0dff"]
    assert len(encode_message("p", 0, bytes(MAX_CHUNKS * CHUNK))) == MAX_CHUNKS
    with pytest.raises(MessageTooLarge):
        encode_message("p", 0, bytes(MAX_CHUNKS * CHUNK + 1))
    with pytest.raises(MessageTooLarge):
        encode_message("p", 0, bytes(MAX_CHUNKS * CHUNK), meta={"a": 1})
    assert issubclass(MessageTooLarge, ProtocolError)
    assert [f[14] for f in encode_raw("p", 0, 0x04, bytes(3 * CHUNK))] == [85, 170, 255]


def test_encoder_refusals() -> None:
    for action in ["", "x" * 13, "ééééééé", "a\0b"]:
        with pytest.raises(ValueError):
            encode_message(action, 0, "x")
    assert encode_message("x" * 12, 0, "")[0][:12] == b"x" * 12
    with pytest.raises(ValueError):
        encode_message("p", 256, "x")
    with pytest.raises(ValueError):
        encode_message("p", 0, "x", meta={"a": 1})  # meta needs a binary value
    with pytest.raises(ValueError):
        encode_message("p", 0, b"x", meta=[1])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_raw("p", 0, 0x01, b"")


def test_nonce_counter() -> None:
    n = NonceCounter()
    assert [n.take("syncGraph") for _ in range(3)] == [0, 1, 2]
    assert n.take("@_pong") == 0
    for _ in range(253):
        n.take("syncGraph")
    assert n.take("syncGraph") == 0  # wrapped at 256


def test_interleaved_messages() -> None:
    a = encode_message("syncGraph", 1, bytes(CHUNK * 2 + 1))
    b = encode_message("probe", 1, "hi")
    c = encode_message("syncGraph", 2, [1, 2])
    fa, errors = assembler()
    out = feed_all(fa, [a[0], b[0], c[0], a[1], a[2]])
    assert [(m.action, m.nonce) for m in out] == [("probe", 1), ("syncGraph", 2), ("syncGraph", 1)]
    assert errors == []


def test_dropped_frames() -> None:
    fa, errors = assembler(actions={"syncGraph"})
    good = encode_message("syncGraph", 0, [1])[0]
    assert fa.feed(good[:14]) == []
    assert fa.feed(encode_message("other", 0, [1])[0]) == []
    assert fa.feed(good[:13] + b"\x29" + good[14:]) == []  # reserved flag bit
    assert fa.feed(b"\0" * 12 + good[12:]) == []  # empty action
    assert fa.feed(good[:HEADER_LEN] + b"[1,") == []
    assert [e[0] for e in errors] == ["short-frame", "unknown-action", "bad-flags", "unknown-action", "bad-json"]
    assert fa.error_counts["unknown-action"] == 2
    assert fa.feed(good)[0].value == [1]  # the connection goes on


def test_message_size_bound() -> None:
    fa, errors = assembler(max_message_bytes=CHUNK)
    frames = encode_message("p", 0, bytes(3 * CHUNK))
    assert feed_all(fa, frames) == []
    assert [e[0] for e in errors] == ["too-large"]  # once, the rest is swallowed
    assert fa.feed(encode_message("p", 0, b"ok")[0])[0].value == b"ok"


def test_chunk_count_bound() -> None:
    fa, errors = assembler()
    head = b"p".ljust(12, b"\0") + bytes([0, 0x0C, 0])
    for _ in range(MAX_CHUNKS + 5):
        fa.feed(head + b"x")
    assert fa.feed(b"p".ljust(12, b"\0") + bytes([0, 0x0D, 255]) + b"x") == []
    assert [e[0] for e in errors] == ["too-large"]


def test_in_flight_and_stale() -> None:
    clock = Clock()
    fa, errors = assembler(max_in_flight=2, stale_after=10, clock=clock)
    firsts = [encode_message("p", n, bytes(2 * CHUNK + 1)) for n in range(3)]
    for frames in firsts:
        fa.feed(frames[0])
    assert [e[0] for e in errors] == ["in-flight-limit"]
    assert fa.feed(firsts[0][1]) == fa.feed(firsts[0][2]) == []  # nonce 0's tail is swallowed
    assert fa.feed(firsts[0][0]) == []  # ...up to its last frame; then the nonce is fresh again
    clock.now = 11
    fa.feed(encode_message("q", 0, "x")[0])
    assert sorted(e for e in errors if e[0] == "stale") == [
        ("stale", "p#0 incomplete for 10 s"),
        ("stale", "p#2 incomplete for 10 s"),
    ]


def test_bad_zlib_and_bomb() -> None:
    fa, errors = assembler(max_inflated_bytes=10_000)
    head = b"p".ljust(12, b"\0") + bytes([0])
    assert fa.feed(head + bytes([0x19, 255]) + b"not zlib") == []
    bomb = zlib.compress(b"[" + b"0," * 1_000_000 + b"0]")
    assert len(bomb) < 10_000
    assert fa.feed(head + bytes([0x19, 255]) + bomb) == []
    truncated = zlib.compress(b"[1]" * 300)[:-3]
    assert fa.feed(head + bytes([0x19, 255]) + truncated) == []
    junk = zlib.compress(b"[1]") + b"x"
    assert fa.feed(head + bytes([0x19, 255]) + junk) == []
    assert [e[0] for e in errors] == ["bad-zlib"] * 4
    assert "more than 10000" in errors[1][1]
    assert fa.feed(head + bytes([0x19, 255]) + zlib.compress(b"[1]"))[0].value == [1]


def test_inflate_gzip() -> None:
    import gzip

    assert inflate(gzip.compress(b"abc"), 10, wbits=47) == b"abc"
    with pytest.raises(ProtocolError):
        inflate(gzip.compress(b"abc"), 10)


def test_bad_meta_and_depth() -> None:
    fa, errors = assembler(max_json_depth=5)
    head = b"p".ljust(12, b"\0") + bytes([0])
    assert fa.feed(head + bytes([0x0E, 128]) + b"{bad") == []  # kept until the last chunk
    assert fa.feed(head + bytes([0x0D, 255]) + b"\x01") == []
    assert fa.feed(encode_message("p", 1, [[[[[[1]]]]]])[0]) == []
    assert [e[0] for e in errors] == ["bad-meta", "bad-json"]


def test_text_decoding_is_lenient() -> None:
    fa, _ = assembler()
    head = b"p".ljust(12, b"\0") + bytes([0, 0x01, 255])
    assert fa.feed(head + b"a\xffb")[0].value == "a\ufffdb"
    (m,) = fa.feed(encode_message("p", 1, "x\ud800")[0])
    assert m.value == "x\ufffd"
