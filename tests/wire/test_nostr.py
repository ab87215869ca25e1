"""Signaling codecs against the vectors captured from real GenosDB peers (signaling.md §2-§5)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdbnb.wire import nostr
from gdbnb.wire.nostr import (
    ALPHABET,
    APP_ID,
    ClientClose,
    ClientEvent,
    ClientReq,
    KeyPair,
    RelayEose,
    RelayEvent,
    RelayNotice,
    RelayOk,
    Signal,
    SignalKind,
    b36,
    make_event,
    parse_client_message,
    parse_relay_message,
    parse_signal,
    root_topic,
    self_topic,
    topic_hash,
    topic_kind,
    verify_event,
)

from ..vectors import vectors_dir


VECTORS = vectors_dir("signaling")
needs_vectors = pytest.mark.skipif(VECTORS is None, reason="signaling vectors not found")


def _load(name: str) -> dict:
    assert VECTORS is not None
    return json.loads((VECTORS / name).read_text("utf-8"))


def _derivation_cases() -> list[dict]:
    return _load("derivations.json")["cases"] if VECTORS else []


def _run_events() -> list[tuple[str, dict, dict]]:
    if VECTORS is None:
        return []
    out = []
    for path in sorted(VECTORS.glob("run-*.json")):
        run = json.loads(path.read_text("utf-8"))
        for i, entry in enumerate(run["events"]):
            out.append((f"{path.stem}#{i}", run, entry))
    return out


RUN_EVENTS = _run_events()


# --- derivations ----------------------------------------------------------------------------


def test_b36_examples() -> None:
    assert [b36(n) for n in (0, 35, 36, 255)] == ["0", "z", "10", "73"]
    with pytest.raises(ValueError):
        b36(-1)


@given(st.integers(min_value=0, max_value=2**64))
def test_b36_roundtrips_through_int(n: int) -> None:
    assert int(b36(n), 36) == n


@needs_vectors
@pytest.mark.parametrize("case", _derivation_cases(), ids=lambda c: f"{c['room_id']}/{c['password']}")
def test_derivations(case: dict) -> None:
    app, room = case["app_id"], case["room_id"]
    assert case["root_topic_input"].encode().hex() == case["root_topic_input_utf8_hex"]
    assert topic_hash(case["root_topic_input"]) == case["root_topic"]
    assert root_topic(app, room) == case["root_topic"]
    assert topic_kind(case["root_topic"]) == case["root_kind"]
    assert sum(map(ord, case["root_topic"])) == case["root_topic_charcode_sum"]
    for st_case in case["self_topics"]:
        assert self_topic(app, room, st_case["peer_id"]) == st_case["topic"]
        assert topic_kind(st_case["topic"]) == st_case["kind"]


def test_worked_example_12_1() -> None:
    room = nostr.data_room_id("testroom")
    assert room == "graph-sync-room-testroom"
    assert nostr.presence_room_id("testroom") == "app-sync-testroom"
    assert root_topic(APP_ID, room) == "3v4q4p645k355f4g5u594j2i5v346dz1e51402n"
    assert topic_kind("3v4q4p645k355f4g5u594j2i5v346dz1e51402n") == 22833
    assert self_topic(APP_ID, room, "G822QiC6oMjlzPwQ4joA") == "341k4b276k6tk5d1j475hx1u324e2v4j6u1s3f"


def test_kind_uses_utf16_code_units() -> None:
    # Not reachable with real topics (always [0-9a-z]) but pinned to the JS definition.
    assert topic_kind("\U0001f600") == (0xD83D + 0xDE00) % 10000 + 20000
    assert 20000 <= topic_kind("") <= 29999


def test_ids() -> None:
    pid, sid = nostr.new_peer_id(), nostr.new_sub_id()
    assert len(pid) == 20 and set(pid) <= set(ALPHABET)
    assert len(sid) == 64 and set(sid) <= set(ALPHABET)
    assert len({nostr.new_peer_id() for _ in range(50)}) == 50
    assert len(ALPHABET) == 62 and len(set(ALPHABET)) == 62


def test_constants() -> None:
    assert nostr.LIB == "GenosRTC" and APP_ID == "1234"
    assert len(nostr.DEFAULT_RELAY_URLS) == 8
    assert all(u.startswith("wss://") for u in nostr.DEFAULT_RELAY_URLS)


def test_normalize_relay_urls() -> None:
    urls = ["ws://a/", "ws://a", " ws://b ", "", "ws://c//"] + [f"ws://r{i}" for i in range(20)]
    out = nostr.normalize_relay_urls(urls)
    assert out[:3] == ["ws://a", "ws://b", "ws://c/"]
    assert len(out) == 10
    assert len(nostr.normalize_relay_urls(urls, limit=None)) == 23


@pytest.mark.parametrize(
    ("msg", "bits"),
    [
        ("pow: 28 bits needed", 28),
        ("blocked: POW:12  Bits Needed for kind 20000", 12),
        ("pow:0 bits needed", 0),
        ("rate-limited", 0),
        ("pow: ٣ bits needed", 0),  # non-ASCII digits do not match JavaScript's \d
        (None, 0),
    ],
)
def test_pow_detection(msg: object, bits: int) -> None:
    assert nostr.pow_bits_needed(msg) == bits


# --- events ---------------------------------------------------------------------------------


@needs_vectors
@pytest.mark.parametrize(("name", "run", "entry"), RUN_EVENTS, ids=[e[0] for e in RUN_EVENTS])
def test_captured_event_verifies(name: str, run: dict, entry: dict) -> None:
    ev = entry["event"]
    assert entry["checks"] == {"id_matches": True, "schnorr_sig_valid": True, "kind_matches_topic": True}
    assert verify_event(ev)
    assert list(ev) == ["kind", "content", "pubkey", "created_at", "tags", "id", "sig"]
    (topic,) = nostr.event_topics(ev)
    assert ev["kind"] == topic_kind(topic)
    room = entry["room_id"]
    if entry["topic_is"] == "root":
        assert topic == root_topic(run["app_id"], room)
    else:
        target = entry["topic_is"].rsplit(" ", 1)[-1]
        assert topic == self_topic(run["app_id"], room, target)
    sig = parse_signal(ev["content"])
    assert sig is not None and sig.kind == SignalKind(entry["message"])
    assert sig.peer_id == entry["from_peer"]
    declared = run["peers"].get(entry["from_peer"], {}).get("declared_type")
    if sig.kind in (SignalKind.OFFER, SignalKind.ANSWER):
        assert sig.sdp and "$" in sig.sdp
        assert sig.peer_type == declared
    else:
        assert sig.peer_type is None


@needs_vectors
def test_worked_example_12_2_preimage() -> None:
    ev = json.loads(
        '{"kind":22833,"content":"{\\"peerId\\":\\"MjbMP1Ei9rApTGrmKJlf\\"}","pubkey":"8c8cd2d1f726695399eb64686569d039223442013b4e646344a8ad567b8f767f","created_at":1795940681,"tags":[["x","3v4q4p645k355f4g5u594j2i5v346dz1e51402n"]],"id":"20ee0b76bc8936028d17bb0f14434260505a33a6a90cd0437778d8aa928283fc","sig":"14acf34ea8472d18f16900c17e57a0edee6d07f44eaa0285391cc72b76a5956f07bceb3cbbe179da0ff6bf110a12db2e0c1060744b2e59d68b8f83f75484572f"}'
    )
    pre = nostr.serialize_event(ev["pubkey"], ev["created_at"], ev["kind"], ev["tags"], ev["content"])
    assert pre == (
        b'[0,"8c8cd2d1f726695399eb64686569d039223442013b4e646344a8ad567b8f767f",1795940681,22833,'
        b'[["x","3v4q4p645k355f4g5u594j2i5v346dz1e51402n"]],"{\\"peerId\\":\\"MjbMP1Ei9rApTGrmKJlf\\"}"]'
    )
    assert verify_event(ev)


def test_make_event_roundtrip() -> None:
    kp = KeyPair()
    assert re.fullmatch(r"[0-9a-f]{64}", kp.pubkey)
    assert kp.pubkey in repr(kp) and kp.secret.hex() not in repr(kp)
    topic = root_topic(APP_ID, "graph-sync-room-x")
    ev = make_event(kp, topic, nostr.announce_content("abc"), created_at=1700000000)
    assert list(ev) == ["kind", "content", "pubkey", "created_at", "tags", "id", "sig"]
    assert ev["kind"] == topic_kind(topic) and ev["tags"] == [["x", topic]]
    assert ev["created_at"] == 1700000000
    assert verify_event(ev)
    assert verify_event(json.loads(nostr.dumps(ev)))
    # the same secret gives the same pubkey
    assert KeyPair(kp.secret).pubkey == kp.pubkey == KeyPair(kp.secret.hex()).pubkey
    assert abs(make_event(kp, topic, "x")["created_at"] - nostr.now_s()) <= 1


def _tamper_cases(ev: dict) -> list[object]:
    cases: list[object] = []
    for key in ev:
        missing = dict(ev)
        del missing[key]
        cases.append(missing)
    for key, bad in [
        ("content", "tampered"),
        ("kind", ev["kind"] + 1),
        ("kind", True),
        ("kind", float(ev["kind"])),
        ("created_at", "1700000000"),
        ("tags", [["x", 5]]),
        ("tags", "x"),
        ("pubkey", "00" * 32),
        ("pubkey", ev["pubkey"].upper()),
        ("id", "0" * 64),
        ("sig", "0" * 128),
        ("sig", "zz" * 64),
        ("sig", ev["sig"][:-2]),
        ("content", "\ud800"),
        ("pubkey", None),
    ]:
        cases.append({**ev, key: bad})
    cases += [None, [], "ev", 5, {"id": ev["id"]}]
    return cases


def test_verify_rejects_tampering_without_raising() -> None:
    ev = make_event(KeyPair(), "topic", "hi")
    for bad in _tamper_cases(ev):
        assert verify_event(bad) is False


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8,
)
_EVENT = make_event(KeyPair(), "topic", "hi")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(_EVENT)), _JSON)
def test_verify_never_raises_on_one_bad_field(key: str, value: object) -> None:
    bad = {**_EVENT, key: value}
    assert verify_event(bad) is (bad == _EVENT)


@settings(max_examples=100, deadline=None)
@given(_JSON)
def test_parsers_never_raise(value: object) -> None:
    assert verify_event(value) is False
    text = json.dumps(value)
    parse_signal(text)
    parse_client_message(text)
    parse_relay_message(text)


# --- client / relay messages ----------------------------------------------------------------


@needs_vectors
def test_req_matches_reference_frame() -> None:
    frames = _load("client-frames.json")["frames"]
    reqs = [f["text"] for f in frames if f.get("text", "").startswith('["REQ"')]
    assert reqs
    for text in reqs:
        _, sub_id, flt = json.loads(text)
        (topic,) = flt["#x"]
        assert nostr.encode_req(sub_id, topic, since=flt["since"]) == text
    closes = [f["text"] for f in frames if f.get("text", "").startswith('["CLOSE"')]
    for text in closes:
        assert nostr.encode_close(json.loads(text)[1]) == text
    events = [f["text"] for f in frames if f.get("text", "").startswith('["EVENT",{')]
    for text in events:
        ev = json.loads(text)[1]
        assert verify_event(ev)
        assert nostr.encode_event(ev) == text


def test_req_filter_key_order() -> None:
    assert list(nostr.req_filter("t", since=5)) == ["kinds", "since", "#x"]
    assert nostr.encode_req("s", "abc", since=7) == f'["REQ","s",{{"kinds":[{topic_kind("abc")}],"since":7,"#x":["abc"]}}]'


def test_parse_client_message() -> None:
    assert parse_client_message('["REQ","s",{"kinds":[1]},{"kinds":[2]}]') == ClientReq("s", {"kinds": [1]})
    assert parse_client_message('["REQ","s"]') == ClientReq("s", None)
    assert parse_client_message('["CLOSE","s"]') == ClientClose("s")
    assert parse_client_message('["EVENT",{"a":1}]') == ClientEvent({"a": 1})
    for junk in [
        "not json", '{"a": 1}', '["COUNT","x",{}]', '["AUTH","x"]', '["REQ",5,{}]',
        '["EVENT","notanobject"]', "[]", "[1]", '["CLOSE"]', b"\xff\xfe", "[" * 100000,
    ]:
        assert parse_client_message(junk) is None


def test_parse_relay_message() -> None:
    assert parse_relay_message('["EVENT","s",{"k":1}]') == RelayEvent("s", {"k": 1})
    assert parse_relay_message('["OK","id",true,""]') == RelayOk("id", True, "")
    assert parse_relay_message('["OK","id",false,"pow: 20 bits needed"]') == RelayOk("id", False, "pow: 20 bits needed")
    assert parse_relay_message('["NOTICE","hello"]') == RelayNotice("hello")
    assert parse_relay_message('["EOSE","s"]') == RelayEose("s")
    for junk in ["x", "{}", '["EVENT","s","notobj"]', '["EVENT",{"k":1}]', '["NOTICE",5]', "[[" * 50000]:
        assert parse_relay_message(junk) is None


# --- signaling contents ---------------------------------------------------------------------


def test_contents_byte_exact() -> None:
    assert nostr.announce_content("MjbMP1Ei9rApTGrmKJlf") == '{"peerId":"MjbMP1Ei9rApTGrmKJlf"}'
    assert nostr.bye_content("KDWe9wWqwlhrTpT59oHD") == '{"peerId":"KDWe9wWqwlhrTpT59oHD","bye":1}'
    assert (
        nostr.answer_content("G822QiC6oMjlzPwQ4joA", "1,2$AA==", "native")
        == '{"peerId":"G822QiC6oMjlzPwQ4joA","answer":{"type":"answer","sdp":"1,2$AA=="},"type":"native"}'
    )
    assert nostr.offer_content("p", "e") == '{"peerId":"p","offer":{"type":"offer","sdp":"e"}}'


@needs_vectors
def test_contents_reproduce_captured_answer() -> None:
    run = _load("run-python-native-nopassword.json")
    (entry,) = [e for e in run["events"] if e["message"] == "answer"]
    content = entry["event"]["content"]
    sig = parse_signal(content)
    assert sig is not None
    assert nostr.answer_content(sig.peer_id, sig.sdp or "", sig.peer_type) == content


def test_parse_signal_cases() -> None:
    assert parse_signal('{"peerId":"a"}') == Signal(SignalKind.ANNOUNCE, "a")
    assert parse_signal('{"peerId":"a","bye":1}') == Signal(SignalKind.BYE, "a")
    assert parse_signal('{"peerId":"a","bye":0}') == Signal(SignalKind.ANNOUNCE, "a")
    assert parse_signal('{"peerId":"a","offer":{"type":"offer","sdp":"x"},"peer":{},"type":"superpeer"}') == Signal(
        SignalKind.OFFER, "a", "x", "superpeer"
    )
    assert parse_signal('{"peerId":"a","answer":{"sdp":"x"},"type":7}') == Signal(SignalKind.ANSWER, "a", "x", None)
    assert parse_signal('{"peerId":"a","bye":1,"offer":{"sdp":"x"}}') == Signal(SignalKind.BYE, "a")
    for bad in [
        "", "nope", "[]", "null", '{"peerId":5}', '{"peerId":""}', '{"bye":1}',
        '{"peerId":"a","offer":"x"}', '{"peerId":"a","offer":{"sdp":5}}',
        '{"peerId":"a","offer":{"type":"answer","sdp":"x"}}', '{"peerId":"a","answer":[1]}',
        '{"peerId":"' + "a" * 1000 + '"}', "{" * 100000, 5, None,
    ]:
        assert parse_signal(bad) is None, bad
