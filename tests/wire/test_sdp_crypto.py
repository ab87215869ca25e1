"""SDP encryption against every offer and answer captured from real peers (signaling.md §6)."""

from __future__ import annotations

import base64
import json

import pytest

from gdbnb.errors import ProtocolError
from gdbnb.wire.nostr import APP_ID, parse_signal
from gdbnb.wire.sdp_crypto import SdpDecryptError, decrypt_sdp, encrypt_sdp, room_key

from ..vectors import vectors_dir


VECTORS = vectors_dir("signaling")
needs_vectors = pytest.mark.skipif(VECTORS is None, reason="signaling vectors not found")


def _sdp_events(with_error: bool) -> list[tuple[str, dict, dict]]:
    if VECTORS is None:
        return []
    out = []
    for path in sorted(VECTORS.glob("run-*.json")):
        run = json.loads(path.read_text("utf-8"))
        for i, entry in enumerate(run["events"]):
            key = "decrypt_error" if with_error else "decrypted_sdp"
            if key in entry:
                out.append((f"{path.stem}#{i}", run, entry))
    return out


DECRYPTABLE = _sdp_events(with_error=False)
UNDECRYPTABLE = _sdp_events(with_error=True)


def _encrypted(entry: dict) -> str:
    sig = parse_signal(entry["event"]["content"])
    assert sig is not None and sig.sdp is not None
    return sig.sdp


@needs_vectors
def test_derivation_keys() -> None:
    cases = json.loads((VECTORS / "derivations.json").read_text("utf-8"))["cases"]  # type: ignore[operator]
    for case in cases:
        assert room_key(case["password"], case["app_id"], case["room_id"]).hex() == case["aes_key_hex"]
    assert room_key(None, APP_ID, "graph-sync-room-testroom") == room_key("", APP_ID, "graph-sync-room-testroom")


@needs_vectors
@pytest.mark.parametrize(("name", "run", "entry"), DECRYPTABLE, ids=[e[0] for e in DECRYPTABLE])
def test_captured_sdp_decrypts_and_reencrypts(name: str, run: dict, entry: dict) -> None:
    key = room_key(run["password"], run["app_id"], entry["room_id"])
    text = _encrypted(entry)
    assert decrypt_sdp(key, text) == entry["decrypted_sdp"]
    iv = bytes(int(x) for x in text.split("$")[0].split(","))
    assert len(iv) == 12
    assert encrypt_sdp(key, entry["decrypted_sdp"], iv=iv) == text


@needs_vectors
@pytest.mark.parametrize(("name", "run", "entry"), UNDECRYPTABLE, ids=[e[0] for e in UNDECRYPTABLE])
def test_captured_wrong_password_offer_fails_cleanly(name: str, run: dict, entry: dict) -> None:
    key = room_key(run["password"], run["app_id"], entry["room_id"])
    with pytest.raises(SdpDecryptError, match="tag"):
        decrypt_sdp(key, _encrypted(entry))


@needs_vectors
def test_wrong_password_fails_cleanly() -> None:
    assert DECRYPTABLE
    _, run, entry = DECRYPTABLE[0]
    wrong = room_key((run["password"] or "") + "x", run["app_id"], entry["room_id"])
    with pytest.raises(ProtocolError):
        decrypt_sdp(wrong, _encrypted(entry))


def test_roundtrip_random_iv() -> None:
    key = room_key("pässwörd", APP_ID, "graph-sync-room-café ✓")
    a, b = encrypt_sdp(key, "v=0\r\nö"), encrypt_sdp(key, "v=0\r\nö")
    assert a != b
    assert decrypt_sdp(key, a) == decrypt_sdp(key, b) == "v=0\r\nö"
    iv_text, b64 = a.split("$")
    assert len(iv_text.split(",")) == 12
    assert len(base64.b64decode(b64)) == len("v=0\r\nö".encode()) + 16


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no separator",
        "1,2,3$AAAA",  # IV too short
        ",".join(["1"] * 12) + "$not base64!",
        ",".join(["256"] * 12) + "$AAAA",
        ",".join(["-1"] * 12) + "$AAAA",
        ",".join(["١"] * 12) + "$AAAA",  # Arabic-Indic digit
        ",".join(["1"] * 12) + "$AAAA",  # shorter than the tag
        ",".join(["1"] * 12) + "$" + base64.b64encode(b"\0" * 40).decode(),
        "$",
    ],
)
def test_malformed_text_raises_protocol_error(text: str) -> None:
    key = room_key("", APP_ID, "r")
    with pytest.raises(SdpDecryptError):
        decrypt_sdp(key, text)


def test_non_string_and_bad_key() -> None:
    key = room_key("", APP_ID, "r")
    with pytest.raises(SdpDecryptError):
        decrypt_sdp(key, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encrypt_sdp(b"short", "x")


def test_plaintext_not_utf8() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = room_key("", APP_ID, "r")
    iv = bytes(range(12))
    sealed = AESGCM(key).encrypt(iv, b"\xff\xfe", None)
    text = ",".join(map(str, iv)) + "$" + base64.b64encode(sealed).decode()
    with pytest.raises(SdpDecryptError, match="UTF-8"):
        decrypt_sdp(key, text)
