"""GenosRTC signaling over Nostr, sans I/O (``spec/signaling.md`` §2-§5).

Everything here is a pure function of its arguments (plus ``secrets`` for fresh ids and keys):
topic and kind derivations, NIP-01 events signed with BIP-340, the client/relay messages of the
ephemeral subset GenosDB uses, and the four signaling contents (announce, offer, answer, bye).
The relay pool (``gdbnb.net.relay_pool``), the embedded relay (``gdbnb.net.relay_server``) and the
room (``gdbnb.net.room``) do the I/O around it.

Parsing functions never raise on hostile input: they return ``None`` (or ``False`` for
``verify_event``) so that callers can drop the message and keep the connection.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

from coincurve import PrivateKey, PublicKeyXOnly

__all__ = [
    # constants
    "LIB",
    "APP_ID",
    "ALPHABET",
    "PEER_ID_LENGTH",
    "SUB_ID_LENGTH",
    "TAG_NAME",
    "RELAY_REDUNDANCY",
    "DEFAULT_RELAY_URLS",
    "POW_NOTICE_RE",
    "MAX_PEER_ID_LENGTH",
    # derivations
    "b36",
    "topic_hash",
    "root_topic",
    "self_topic",
    "topic_kind",
    "data_room_id",
    "presence_room_id",
    "new_peer_id",
    "new_sub_id",
    "now_s",
    "normalize_relay_urls",
    "pow_bits_needed",
    # events
    "KeyPair",
    "serialize_event",
    "event_id",
    "make_event",
    "verify_event",
    "event_topics",
    # client/relay messages
    "dumps",
    "req_filter",
    "encode_req",
    "encode_close",
    "encode_event",
    "ClientReq",
    "ClientClose",
    "ClientEvent",
    "ClientMessage",
    "parse_client_message",
    "RelayEvent",
    "RelayOk",
    "RelayNotice",
    "RelayEose",
    "RelayClosed",
    "RelayMessage",
    "parse_relay_message",
    # signaling contents
    "SignalKind",
    "Signal",
    "announce_content",
    "offer_content",
    "answer_content",
    "bye_content",
    "parse_signal",
]

# --------------------------------------------------------------------------------------------
# Constants (§2, §4.1)

LIB = "GenosRTC"
APP_ID = "1234"  # fixed by GenosDB (browser gdb() and GenosSRV)
ALPHABET = "0123456789AaBbCcDdEeFfGgHhIiJjKkLlMmNnOoPpQqRrSsTtUuVvWwXxYyZz"
PEER_ID_LENGTH = 20
SUB_ID_LENGTH = 64
TAG_NAME = "x"
RELAY_REDUNDANCY = 10  # the relay list is capped at this many URLs
DEFAULT_RELAY_URLS: tuple[str, ...] = (
    "wss://relay.primal.net",
    "wss://relay.snort.social",
    "wss://nostr.oxtr.dev",
    "wss://nostr.vulpem.com",
    "wss://relay.nostr.net",
    "wss://nostr.sathoarder.com",
    "wss://nostr.data.haus",
    "wss://relay.mostr.pub",
)
#: ``/pow:\s*(\d+)\s*bits needed/i`` of the reference; the digits are ASCII as in JavaScript.
POW_NOTICE_RE = re.compile(r"pow:\s*([0-9]+)\s*bits needed", re.IGNORECASE)
#: Peer ids are 20 characters; anything longer than this in a signaling content is refused.
MAX_PEER_ID_LENGTH = 256

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"[0-9a-fA-F]{128}\Z")


# --------------------------------------------------------------------------------------------
# Derivations (§3)


def b36(n: int) -> str:
    """``n.toString(36)`` for a non-negative integer: lowercase, no padding."""
    if n < 0:
        raise ValueError("b36 takes a non-negative integer")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(reversed(out))


def topic_hash(s: str) -> str:
    """Concatenated base-36 of each byte of SHA-1(UTF-8(s)) (20 to 40 characters)."""
    return "".join(b36(b) for b in hashlib.sha1(s.encode("utf-8")).digest())


def root_topic(app_id: str, room_id: str) -> str:
    """The topic every peer of the room subscribes to (announces and byes)."""
    return topic_hash(f"{LIB}@{app_id}@{room_id}")


def self_topic(app_id: str, room_id: str, peer_id: str) -> str:
    """The topic of one peer in one room (offers and answers addressed to it)."""
    return topic_hash(f"{LIB}@{app_id}@{room_id}@{peer_id}")


def topic_kind(topic: str) -> int:
    """Event kind of a topic: sum of its UTF-16 code units mod 10000, plus 20000 (ephemeral)."""
    units = topic.encode("utf-16-le", "surrogatepass")
    total = sum(int.from_bytes(units[i : i + 2], "little") for i in range(0, len(units), 2))
    return total % 10000 + 20000


def data_room_id(db_name: str) -> str:
    """Room id GenosDB syncs database ``db_name`` in (channel ``syncGraph``)."""
    return f"graph-sync-room-{db_name}"


def presence_room_id(db_name: str) -> str:
    """Room id of ``db.room`` (presence); GenosSRV joins it only with ``--room``."""
    return f"app-sync-{db_name}"


def _random_id(length: int) -> str:
    # The reference maps random bytes with ``% 62``; we draw uniformly, which no peer can tell.
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_peer_id() -> str:
    """A fresh 20-character peer id (use a new one per process, §7.7)."""
    return _random_id(PEER_ID_LENGTH)


def new_sub_id() -> str:
    """A fresh 64-character subscription id."""
    return _random_id(SUB_ID_LENGTH)


def now_s() -> int:
    """``floor(unix_ms / 1000)``, the ``created_at`` and ``since`` clock."""
    return math.floor(time.time())


def normalize_relay_urls(urls: Iterable[str], limit: int | None = RELAY_REDUNDANCY) -> list[str]:
    """Strip one trailing ``/`` (like the reference), drop blanks and duplicates, keep order, cap."""
    out: list[str] = []
    for url in urls:
        url = url.strip()
        if url.endswith("/"):
            url = url[:-1]
        if url and url not in out:
            out.append(url)
    return out if limit is None else out[:limit]


def pow_bits_needed(message: object) -> int:
    """Bits of proof of work a relay NOTICE/OK message asks for; 0 when it asks for none."""
    if not isinstance(message, str):
        return 0
    m = POW_NOTICE_RE.search(message)
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------------------------
# NIP-01 events with BIP-340 signatures (§4.3)


def dumps(obj: Any) -> str:
    """Compact JSON as ``JSON.stringify`` writes it for the values signaling uses."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class KeyPair:
    """A secp256k1 key for signing events; ``pubkey`` is the x-only key in lowercase hex.

    The reference uses one random key per process, never persisted and unrelated to the peer
    id. The secret is kept out of ``repr``.
    """

    __slots__ = ("_key", "pubkey")

    def __init__(self, secret: bytes | str | None = None) -> None:
        if secret is None:
            self._key = PrivateKey()
        else:
            raw = bytes.fromhex(secret) if isinstance(secret, str) else bytes(secret)
            if len(raw) != 32:
                raise ValueError("a secp256k1 secret is 32 bytes")
            self._key = PrivateKey(raw)
        self.pubkey: str = self._key.public_key_xonly.format().hex()

    @classmethod
    def generate(cls) -> KeyPair:
        return cls()

    @property
    def secret(self) -> bytes:
        return self._key.secret

    def sign(self, digest: bytes) -> bytes:
        """BIP-340 signature of a 32-byte digest, with fresh auxiliary randomness."""
        return self._key.sign_schnorr(digest, secrets.token_bytes(32))

    def __repr__(self) -> str:
        return f"KeyPair(pubkey={self.pubkey!r})"


def serialize_event(pubkey: str, created_at: int, kind: int, tags: Any, content: str) -> bytes:
    """The NIP-01 id preimage: ``JSON.stringify([0, pubkey, created_at, kind, tags, content])``."""
    return dumps([0, pubkey, created_at, kind, tags, content]).encode("utf-8")


def event_id(pubkey: str, created_at: int, kind: int, tags: Any, content: str) -> str:
    return hashlib.sha256(serialize_event(pubkey, created_at, kind, tags, content)).hexdigest()


def make_event(
    keypair: KeyPair, topic: str, content: str, created_at: int | None = None
) -> dict[str, Any]:
    """A signed event for ``topic`` with kind ``topic_kind(topic)`` and tag ``["x", topic]``.

    The dict's key order is the reference's wire order: kind, content, pubkey, created_at, tags,
    id, sig.
    """
    if created_at is None:
        created_at = now_s()
    kind = topic_kind(topic)
    tags = [[TAG_NAME, topic]]
    digest = hashlib.sha256(
        serialize_event(keypair.pubkey, created_at, kind, tags, content)
    ).digest()
    return {
        "kind": kind,
        "content": content,
        "pubkey": keypair.pubkey,
        "created_at": created_at,
        "tags": tags,
        "id": digest.hex(),
        "sig": keypair.sign(digest).hex(),
    }


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _valid_tags(tags: object) -> bool:
    return isinstance(tags, list) and all(
        isinstance(t, list) and all(isinstance(v, str) for v in t) for t in tags
    )


def verify_event(ev: object) -> bool:
    """True when ``ev`` is a well-formed event whose id and BIP-340 signature check out.

    Never raises. Stricter than NIP-01 needs only where JSON serializers could disagree: kind
    and created_at must be integers and tags a list of lists of strings.
    """
    try:
        if not isinstance(ev, dict):
            return False
        pubkey, ident, sig = ev.get("pubkey"), ev.get("id"), ev.get("sig")
        kind, created_at = ev.get("kind"), ev.get("created_at")
        tags, content = ev.get("tags"), ev.get("content")
        if not (isinstance(pubkey, str) and _HEX64.match(pubkey)):
            return False
        if not (isinstance(ident, str) and _HEX64.match(ident)):
            return False
        if not (isinstance(sig, str) and _HEX128.match(sig)):
            return False
        if not (_is_int(kind) and _is_int(created_at) and isinstance(content, str)):
            return False
        if not _valid_tags(tags):
            return False
        digest = hashlib.sha256(serialize_event(pubkey, created_at, kind, tags, content)).digest()
        if digest.hex() != ident:
            return False
        return PublicKeyXOnly(bytes.fromhex(pubkey)).verify(bytes.fromhex(sig), digest)
    except Exception:  # invalid point, lone surrogates, anything coincurve objects to
        return False


def event_topics(ev: Mapping[str, Any]) -> list[str]:
    """The values of the event's ``x`` tags (malformed tags are skipped)."""
    tags = ev.get("tags")
    if not isinstance(tags, list):
        return []
    return [
        t[1]
        for t in tags
        if isinstance(t, list) and len(t) >= 2 and t[0] == TAG_NAME and isinstance(t[1], str)
    ]


# --------------------------------------------------------------------------------------------
# Client -> relay messages (§4.2, §9)


def req_filter(topic: str, since: int | None = None, kind: int | None = None) -> dict[str, Any]:
    """``{"kinds":[kind(topic)], "since":since, "#x":[topic]}`` in exactly that key order."""
    return {
        "kinds": [topic_kind(topic) if kind is None else kind],
        "since": now_s() if since is None else since,
        "#x": [topic],
    }


def encode_req(sub_id: str, topic: str, since: int | None = None, kind: int | None = None) -> str:
    return dumps(["REQ", sub_id, req_filter(topic, since, kind)])


def encode_close(sub_id: str) -> str:
    return dumps(["CLOSE", sub_id])


def encode_event(ev: Mapping[str, Any]) -> str:
    return dumps(["EVENT", ev])


@dataclass(frozen=True, slots=True)
class ClientReq:
    """``["REQ", sub_id, filter, ...]``; ``filter`` is the first filter (None when absent)."""

    sub_id: str
    filter: Any


@dataclass(frozen=True, slots=True)
class ClientClose:
    sub_id: str


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """``["EVENT", ev]`` with ``ev`` a JSON object (not yet verified)."""

    event: dict[str, Any]


ClientMessage = Union[ClientReq, ClientClose, ClientEvent]


def _loads(data: str | bytes) -> Any:
    """``json.loads`` that reports every failure (bad UTF-8, syntax, nesting) as ``None``."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError, TypeError):
        return None


def parse_client_message(data: str | bytes | list[Any]) -> ClientMessage | None:
    """A client message the embedded relay acts on, or None for anything it ignores.

    Mirrors GenosSRV: non-JSON, non-arrays, COUNT/AUTH, a REQ or CLOSE whose id is not a string
    and an EVENT whose payload is not an object are all silently ignored.
    """
    msg = data if isinstance(data, list) else _loads(data)
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
        return None
    verb = msg[0]
    if verb == "REQ" and len(msg) >= 2 and isinstance(msg[1], str):
        return ClientReq(msg[1], msg[2] if len(msg) >= 3 else None)
    if verb == "CLOSE" and len(msg) >= 2 and isinstance(msg[1], str):
        return ClientClose(msg[1])
    if verb == "EVENT" and len(msg) >= 2 and isinstance(msg[1], dict):
        return ClientEvent(msg[1])
    return None


# --------------------------------------------------------------------------------------------
# Relay -> client messages (§4.4)


@dataclass(frozen=True, slots=True)
class RelayEvent:
    sub_id: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RelayOk:
    event_id: str
    accepted: bool
    message: str


@dataclass(frozen=True, slots=True)
class RelayNotice:
    message: str


@dataclass(frozen=True, slots=True)
class RelayEose:
    sub_id: str


@dataclass(frozen=True, slots=True)
class RelayClosed:
    sub_id: str
    message: str


RelayMessage = Union[RelayEvent, RelayOk, RelayNotice, RelayEose, RelayClosed]


def parse_relay_message(data: str | bytes) -> RelayMessage | None:
    """A relay message, or None when it is malformed or of a type nobody acts on."""
    msg = _loads(data)
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
        return None
    verb, n = msg[0], len(msg)
    if verb == "EVENT" and n >= 3 and isinstance(msg[1], str) and isinstance(msg[2], dict):
        return RelayEvent(msg[1], msg[2])
    if verb == "OK" and n >= 3:
        text = msg[3] if n >= 4 and isinstance(msg[3], str) else ""
        return RelayOk(msg[1] if isinstance(msg[1], str) else "", msg[2] is True, text)
    if verb == "NOTICE" and n >= 2 and isinstance(msg[1], str):
        return RelayNotice(msg[1])
    if verb == "EOSE" and n >= 2 and isinstance(msg[1], str):
        return RelayEose(msg[1])
    if verb == "CLOSED" and n >= 2 and isinstance(msg[1], str):
        return RelayClosed(msg[1], msg[2] if n >= 3 and isinstance(msg[2], str) else "")
    return None


# --------------------------------------------------------------------------------------------
# Signaling contents (§5)


class SignalKind(enum.StrEnum):
    ANNOUNCE = "announce"
    OFFER = "offer"
    ANSWER = "answer"
    BYE = "bye"


@dataclass(frozen=True, slots=True)
class Signal:
    """A parsed event content.

    ``sdp`` is the still-encrypted SDP text of an offer or answer (see ``sdp_crypto``);
    ``peer_type`` is the optional declared kind of peer (``"superpeer"``, ``"native"``).
    """

    kind: SignalKind
    peer_id: str
    sdp: str | None = None
    peer_type: str | None = None


def announce_content(peer_id: str) -> str:
    return dumps({"peerId": peer_id})


def offer_content(peer_id: str, encrypted_sdp: str, peer_type: str | None = None) -> str:
    """An offer content; the reference's accidental ``peer`` field is omitted (§5)."""
    body: dict[str, Any] = {"peerId": peer_id, "offer": {"type": "offer", "sdp": encrypted_sdp}}
    if peer_type:
        body["type"] = peer_type
    return dumps(body)


def answer_content(peer_id: str, encrypted_sdp: str, peer_type: str | None = None) -> str:
    body: dict[str, Any] = {"peerId": peer_id, "answer": {"type": "answer", "sdp": encrypted_sdp}}
    if peer_type:
        body["type"] = peer_type
    return dumps(body)


def bye_content(peer_id: str) -> str:
    return dumps({"peerId": peer_id, "bye": 1})


def _truthy(v: object) -> bool:
    """JavaScript truthiness for JSON values."""
    if isinstance(v, (list, dict)):
        return True
    return v not in (None, False, 0, "")


def _description_sdp(desc: object, expected_type: str) -> str | None:
    if not isinstance(desc, dict):
        return None
    sdp, typ = desc.get("sdp"), desc.get("type", expected_type)
    if not isinstance(sdp, str) or typ != expected_type:
        return None
    return sdp


def parse_signal(content: object) -> Signal | None:
    """Parse an event content the way §7.3 reads it; None when malformed.

    Precedence follows the reference: a truthy ``bye`` wins, then ``offer``, then ``answer``,
    and a content with none of them is an announce. A ``type`` that is not a non-empty string
    is ignored (it is informational only).
    """
    if not isinstance(content, (str, bytes)):
        return None
    body = _loads(content)
    if not isinstance(body, dict):
        return None
    peer_id = body.get("peerId")
    if not isinstance(peer_id, str) or not peer_id or len(peer_id) > MAX_PEER_ID_LENGTH:
        return None
    peer_type = body.get("type")
    if not isinstance(peer_type, str) or not peer_type or len(peer_type) > MAX_PEER_ID_LENGTH:
        peer_type = None
    if _truthy(body.get("bye")):
        return Signal(SignalKind.BYE, peer_id)
    if _truthy(body.get("offer")):
        sdp = _description_sdp(body["offer"], "offer")
        return None if sdp is None else Signal(SignalKind.OFFER, peer_id, sdp, peer_type)
    if _truthy(body.get("answer")):
        sdp = _description_sdp(body["answer"], "answer")
        return None if sdp is None else Signal(SignalKind.ANSWER, peer_id, sdp, peer_type)
    return Signal(SignalKind.ANNOUNCE, peer_id, None, peer_type)
