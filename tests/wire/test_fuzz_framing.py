"""Property tests: hostile frames never raise out of FrameAssembler.feed; values round-trip."""

from __future__ import annotations

import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdbnb.wire.framing import CHUNK, HEADER_LEN, FrameAssembler, encode_message
from gdbnb.wire.jsjson import js_dumps

ACTIONS = ["syncGraph", "@_ping", "probe", "c0"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=6), c, max_size=6),
    max_leaves=40,
)

headers = st.builds(
    lambda action, nonce, flags, progress: action.encode()[:12].ljust(12, b"\0") + bytes([nonce, flags, progress]),
    st.sampled_from(ACTIONS + ["", "x\0y", "é"]),
    st.integers(0, 3),
    st.integers(0, 255),
    st.integers(0, 255),
)
payloads = st.one_of(
    st.binary(max_size=64),
    st.builds(zlib.compress, st.binary(max_size=64)),
    st.sampled_from([b"[" * 400, b"{", b"\xff\xfe", b'"\\ud800"', zlib.compress(b"[" * 100_000), b"null"]),
)
frames = st.one_of(st.binary(max_size=40), st.builds(bytes.__add__, headers, payloads))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=30))
def test_random_frames_never_raise(stream: list[bytes]) -> None:
    fa = FrameAssembler(max_in_flight=3, max_message_bytes=200, max_inflated_bytes=50_000)
    for frame in stream:
        for m in fa.feed(frame):
            assert m.kind in ("json", "text", "binary")
    assert len(fa._pending) <= 3


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ACTIONS), st.integers(0, 255), json_values)
def test_json_roundtrip(action: str, nonce: int, value: Any) -> None:
    fa = FrameAssembler()
    (m,) = [m for f in encode_message(action, nonce, value) for m in fa.feed(f)]
    kind = "text" if isinstance(value, str) else "json"  # a string goes as text (flags 01)
    assert (m.action, m.nonce, m.kind) == (action, nonce, kind)
    assert js_dumps(m.value) == js_dumps(value)
    assert not fa.error_counts


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3 * CHUNK), st.text(st.characters(exclude_categories=("Cs",)), max_size=3000), st.booleans())
def test_binary_and_text_roundtrip(size: int, text: str, with_meta: bool) -> None:
    fa = FrameAssembler()
    blob = bytes(i % 251 for i in range(size))
    meta = {"size": size} if with_meta else None
    (m,) = [m for f in encode_message("probe", 1, blob, meta=meta) for m in fa.feed(f)]
    assert (m.value, m.meta, m.kind) == (blob, meta, "binary")
    (m,) = [m for f in encode_message("probe", 2, text) for m in fa.feed(f)]
    assert (m.value, m.kind) == (text, "text")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 50), st.sampled_from([b"0", b"[", b" ", b"a"]))
def test_compression_bombs_refused(megabytes: int, filler: bytes) -> None:
    bomb = zlib.compress(filler * (megabytes * 1_000_000 // 10), 9)
    header = b"probe".ljust(12, b"\0") + bytes([0, 0x19, 255])
    errors: list[tuple[str, str]] = []
    fa = FrameAssembler(max_inflated_bytes=megabytes * 1_000_000 // 20, on_error=lambda *e: errors.append(e))
    frames = [header[:13] + bytes([0x18, 0]) + bomb[i : i + CHUNK] for i in range(0, len(bomb), CHUNK)]
    frames[-1] = header + frames[-1][HEADER_LEN:]
    assert [m for f in frames for m in fa.feed(f)] == []
    assert [e[0] for e in errors] == ["bad-zlib"]


@settings(max_examples=30, deadline=None)
@given(st.integers(257, 200_000), st.sampled_from(["[", "{\"a\":"]))
def test_depth_bombs_refused(depth: int, opener: str) -> None:
    errors: list[tuple[str, str]] = []
    fa = FrameAssembler(on_error=lambda *e: errors.append(e))
    closer = "]" if opener == "[" else "}"
    text = (opener * depth + "1" + closer * depth).encode()
    frames = encode_message("probe", 0, text.decode())  # sent as text, then marked JSON below
    frames = [f[:13] + bytes([f[13] | 0x08]) + f[14:] for f in frames]
    assert [m for f in frames for m in fa.feed(f)] == []
    assert [e[0] for e in errors] in (["bad-json"], ["too-large"])
