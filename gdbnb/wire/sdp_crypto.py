"""AES-256-GCM encryption of the SDP in offers and answers (``spec/signaling.md`` §6).

Wire text: ``"<iv byte>,<iv byte>,…$<base64(ciphertext || 16-byte tag)>"`` (WebCrypto layout, no
AAD). The key is ``SHA256(UTF8(password + ":" + app_id + ":" + room_id))``; with no password it
is derived from public names, so it hides nothing; with a password a peer holding a different
one fails the tag check and can never complete a handshake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gdbnb.errors import ProtocolError

__all__ = [
    "IV_LENGTH",
    "SdpDecryptError",
    "room_key",
    "encrypt_sdp",
    "decrypt_sdp",
]

IV_LENGTH = 12
_TAG_LENGTH = 16


class SdpDecryptError(ProtocolError):
    """An encrypted SDP could not be decrypted: malformed text, or the tag check failed
    (typically the sender uses another password)."""


def room_key(password: str | None, app_id: str, room_id: str) -> bytes:
    """The 32-byte AES key of a room; ``password`` None or ``""`` when none is configured."""
    return hashlib.sha256(f"{password or ''}:{app_id}:{room_id}".encode("utf-8")).digest()


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise ValueError("the SDP key is 32 bytes (see room_key)")


def encrypt_sdp(key: bytes, sdp: str, iv: bytes | None = None) -> str:
    """Encrypt ``sdp`` with a fresh random 12-byte IV (or the given one, for test vectors)."""
    _check_key(key)
    if iv is None:
        iv = os.urandom(IV_LENGTH)
    sealed = AESGCM(bytes(key)).encrypt(bytes(iv), sdp.encode("utf-8"), None)
    return ",".join(str(b) for b in iv) + "$" + base64.b64encode(sealed).decode("ascii")


def _parse_iv(text: str) -> bytes:
    parts = text.split(",")
    # isdecimal() also accepts non-ASCII digits; JavaScript's Number() would not.
    if not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise SdpDecryptError("malformed encrypted SDP: the IV is not a list of bytes")
    values = [int(p) for p in parts]
    if any(v > 255 for v in values):
        raise SdpDecryptError("malformed encrypted SDP: an IV byte is out of range")
    # cryptography accepts 8..128-byte nonces; the reference always sends 12.
    if not 8 <= len(values) <= 128:
        raise SdpDecryptError(f"malformed encrypted SDP: IV of {len(values)} bytes")
    return bytes(values)


def decrypt_sdp(key: bytes, text: str) -> str:
    """Decrypt the wire text; raise ``SdpDecryptError`` when it is malformed or fails the tag."""
    _check_key(key)
    if not isinstance(text, str):
        raise SdpDecryptError("malformed encrypted SDP: not a string")
    iv_text, sep, b64 = text.partition("$")
    if not sep:
        raise SdpDecryptError("malformed encrypted SDP: no '$' separator")
    iv = _parse_iv(iv_text)
    try:
        sealed = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SdpDecryptError("malformed encrypted SDP: bad base64") from None
    if len(sealed) < _TAG_LENGTH:
        raise SdpDecryptError("malformed encrypted SDP: shorter than the GCM tag")
    try:
        plain = AESGCM(bytes(key)).decrypt(iv, sealed, None)
    except InvalidTag:
        raise SdpDecryptError(
            "encrypted SDP failed the AES-GCM tag check (wrong password?)"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpDecryptError("decrypted SDP is not UTF-8") from None
