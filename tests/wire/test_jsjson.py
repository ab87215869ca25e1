"""js_dumps / js_loads: JSON.stringify and JSON.parse (sync-protocol.md §9)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdbnb.core.hlc import Timestamp
from gdbnb.core.node import MISSING
from gdbnb.errors import ProtocolError
from gdbnb.wire.jsjson import (
    DEFAULT_MAX_DEPTH,
    decode_utf8,
    encode_utf8,
    is_array_index,
    js_dumps,
    js_loads,
    js_number,
    nesting_depth,
)


@pytest.mark.parametrize(
    "x, text",
    [
        (2.0, "2"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (1e-5, "0.00001"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e16, "10000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.5e-10, "-1.5e-10"),
        (1000000000000000.5, "1000000000000000.5"),
    ],
)
def test_numbers(x: float, text: str) -> None:
    assert js_number(x) == text
    assert js_dumps(x) == text
    assert js_dumps([x]) == f"[{text}]"


def test_non_finite_and_big_ints() -> None:
    assert js_dumps([math.nan, math.inf, -math.inf]) == "[null,null,null]"
    assert js_dumps(2**60) == "1152921504606847000"  # the double a JS peer holds
    assert js_dumps(2**53 - 1) == "9007199254740991"
    assert js_dumps(-(2**53) - 2) == "-9007199254740994"
    assert js_dumps(10**400) == "null"
    assert js_dumps([True, False, None, 1]) == "[true,false,null,1]"


def test_strings() -> None:
    s = 'q"b\\s/\b\f\n\r\t\x00\x1f\x7f é 😀 \u2028\u2029'
    assert js_dumps(s) == '"q\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f é 😀 \u2028\u2029"'
    assert js_dumps("\ud800x\udfff") == '"\\ud800x\\udfff"'  # lone surrogates escaped
    assert js_dumps("\ud83d\ude00") == '"😀"'  # a pair split in two code points
    js_dumps("\ud800" + "é").encode("utf-8")


def test_key_order() -> None:
    d = {"b": 1, "10": 2, "a": 3, "2": 4, "01": 5, "4294967294": 6, "4294967295": 7, "-1": 8, "0": 9}
    assert js_dumps(d) == '{"0":9,"2":4,"10":2,"4294967294":6,"b":1,"a":3,"01":5,"4294967295":7,"-1":8}'
    assert js_dumps({1: "a", "x": {2: "b", "1": "c"}}) == '{"1":"a","x":{"1":"c","2":"b"}}'
    assert js_dumps({"graphData": {"n": 1, "7": 2}}) == '{"graphData":{"7":2,"n":1}}'
    assert [k for k in ("0", "7", "4294967294", "01", "-1", "4294967295", "1.0", "", "٣")
            if is_array_index(k)] == ["0", "7", "4294967294"]


def test_python_types() -> None:
    ts = Timestamp(1795940472908, 16)
    assert js_dumps({"timestamp": ts}) == '{"timestamp":{"physical":1795940472908,"logical":16}}'
    assert js_dumps({"a": MISSING, "b": [MISSING, 1]}) == '{"b":[null,1]}'
    assert js_dumps((1, (2.0,))) == "[1,[2]]"
    assert js_dumps(b"\x01\xff") == '{"0":1,"1":255}'  # a Uint8Array through JSON
    assert js_dumps({"s": {1, 2}}) == '{"s":{}}'
    assert js_dumps(OrderedDict([("z", 1), ("1", 2)])) == '{"1":2,"z":1}'
    with pytest.raises(ValueError):
        js_dumps(MISSING)
    with pytest.raises(TypeError):
        js_dumps({"x": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        js_dumps(loop)


def test_input_not_modified_and_nested_fixes() -> None:
    value = {"a": [{"b": 2.0, "c": {"1": 1, "0": 0}}], "ok": {"x": [1, "y"]}}
    before = json.dumps(value)
    assert js_dumps(value) == '{"a":[{"b":2,"c":{"0":0,"1":1}}],"ok":{"x":[1,"y"]}}'
    assert json.dumps(value) == before


def test_big_state_is_fast() -> None:
    """The level walk keeps js_dumps within a small factor of the stdlib C encoder."""
    nodes = {
        f"id-{i}": {
            "id": f"id-{i}",
            "value": {"type": "item", "i": i, "name": f"item-{i}", "score": (i % 997) / 1000 + 0.0001},
            "edges": [],
            "timestamp": {"physical": 1795940000000 + i, "logical": i},
        }
        for i in range(10_000)
    }
    nodes["id-5"]["value"]["score"] = 1e-5  # one number the C encoder gets wrong

    def best(f: Any) -> float:
        times = []
        for _ in range(3):
            start = time.process_time()
            f()
            times.append(time.process_time() - start)
        return min(times)

    text = js_dumps(nodes)
    assert '"score":0.00001' in text and text.count("e-") == 0
    baseline = best(lambda: json.dumps(nodes, ensure_ascii=False, separators=(",", ":")))
    assert best(lambda: js_dumps(nodes)) < 5 * baseline + 0.05


def test_loads() -> None:
    v = js_loads(b'{"a":[1,1.0,1e2,-0,1E400],"b":"\\ud83d\\ude00"}')
    assert v == {"a": [1, 1.0, 100.0, 0, math.inf], "b": "😀"}
    assert [type(x) for x in v["a"]] == [int, float, float, int, float]
    assert js_loads(b"\xef\xbb\xbf[1]") == [1]  # TextDecoder drops the BOM
    assert js_loads(b'"\xff"') == "\ufffd"
    assert js_loads("1") == 1
    for bad in [b"NaN", b"[Infinity]", b"[1,]", b"{'a':1}", b"", b"[1] x", b"01", b'"\x01"', "\ufeff[]"]:
        with pytest.raises(ProtocolError):
            js_loads(bad)


def test_depth_bound() -> None:
    ok = "[" * DEFAULT_MAX_DEPTH + "]" * DEFAULT_MAX_DEPTH
    assert nesting_depth(ok) == DEFAULT_MAX_DEPTH
    js_loads(ok)
    with pytest.raises(ProtocolError):
        js_loads("[" * (DEFAULT_MAX_DEPTH + 1) + "]" * (DEFAULT_MAX_DEPTH + 1))
    with pytest.raises(ProtocolError):
        js_loads("[" * 1_000_000)  # no RecursionError, no quadratic scan
    wide = json.dumps([{"a": [i]} for i in range(1000)])
    assert nesting_depth(wide) == 3
    js_loads(wide, max_depth=3)
    assert nesting_depth('[{"a":"[[[[{{{","b\\"[":["\\\\"]}]') == 3
    assert nesting_depth('["\\"' * 50_000) == 1  # unterminated: still linear


def test_utf8_helpers() -> None:
    assert decode_utf8(b"\xef\xbb\xbfhi\xc3") == "hi\ufffd"
    assert encode_utf8("a\ud800b") == "a\ufffdb".encode()
    assert encode_utf8("\ud83d\ude00") == "😀".encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.floats() | st.text(),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=5), c, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_roundtrip(value: Any) -> None:
    text = js_dumps(value)
    again = js_loads(text.encode())
    assert js_dumps(again) == text


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_same_as_node() -> None:
    """Differential check against a real JSON.stringify."""
    import random

    r = random.Random(7)
    values: list[Any] = [
        [r.random() * 10 ** r.randint(-30, 30) * r.choice([1, -1]) for _ in range(300)],
        [float(r.randint(-(10**20), 10**20)) for _ in range(100)],
        {str(k): k for k in [5, 1, 0, 10, 4294967294, 4294967295, -1]} | {"z": 1, "01": 2},
        ["\u2028\u2029\x00\x1f\x7f\ud800\udbff\udc00 é 😀 \"\\"],
    ]
    script = "const v=JSON.parse(require('fs').readFileSync(0,'utf8'));process.stdout.write(v.map(x=>JSON.stringify(x)).join('\\n'))"
    # the input is written with Python's json (exact digits, \\u escapes), read by JSON.parse
    out = subprocess.run(["node", "-e", script], input=json.dumps(values).encode(), capture_output=True, check=True)
    assert out.stdout.decode("utf-8").split("\n") == [js_dumps(v) for v in values]
