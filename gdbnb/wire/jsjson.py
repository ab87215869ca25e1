"""JSON exactly as JavaScript writes and reads it (sync-protocol.md §9).

``js_dumps`` is byte-identical to ``JSON.stringify``; ``js_loads`` is ``JSON.parse`` behind a
``TextDecoder``, with a nesting bound checked before parsing.

How ``js_dumps`` stays fast on full states of 10^5-10^6 nodes: one pass (``_js``) rewrites only
what the stdlib C encoder would get wrong (integral floats, keys that JS orders first, tuples,
``Timestamp``, ``MISSING``...) and returns every untouched container as is, so a state of plain
dicts, lists, strings and safe ints is neither copied nor re-walked; the C encoder then writes it.
The few numbers whose JS text differs from Python's ``repr`` (non-integers below 1e-4, integers
beyond 2^53) become ``_JSNumber`` markers, and only then is a second C encoder used that lets
their text through verbatim.
"""

from __future__ import annotations

import json
import math
import re
import sys
from array import array
from itertools import accumulate, chain, compress, repeat
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import is_, not_
from typing import Any, Callable, Iterable

from ..core.hlc import Timestamp
from ..core.node import MISSING
from ..errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "js_dumps",
    "js_loads",
    "js_number",
    "js_object",
    "js_key",
    "is_array_index",
    "nesting_depth",
    "decode_utf8",
    "encode_utf8",
]

#: Default bound on array/object nesting accepted by ``js_loads``: node values may nest 200
#: levels (``gdbnb.core.node.MAX_VALUE_DEPTH``) and sync envelopes add at most 4-7 around them.
#: It must stay well below ``sys.getrecursionlimit()`` (the C parser recurses per level).
DEFAULT_MAX_DEPTH = 256

_MAX_SAFE = 2**53 - 1
_MAX_INDEX = 2**32 - 2  # canonical array indices are 0 .. 2^32-2


# --------------------------------------------------------------------------------------------
# numbers and keys


def js_number(x: float) -> str:
    """``String(x)`` / ``JSON.stringify(x)`` of a finite double (ECMAScript Number::toString)."""
    if x == 0:
        return "0"  # also -0
    r = repr(x)
    sign = "-" if r[0] == "-" else ""
    mantissa, _, exp = r.lstrip("-").partition("e")
    int_part, _, frac = mantissa.partition(".")
    all_digits = int_part + frac
    lead = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits.strip("0")
    k = len(digits)
    # x = 0.d1d2...dk * 10^n
    n = len(int_part) - lead + (int(exp) if exp else 0)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exp_text = ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + (digits if k == 1 else digits[0] + "." + digits[1:]) + exp_text


def is_array_index(key: str) -> bool:
    """True for keys JS orders first in objects: canonical array indices ``"0"`` .. ``"4294967294"``."""
    return (
        key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and len(key) <= 10
        and int(key) <= _MAX_INDEX
    )


def js_key(key: Any) -> str:
    """The property name JS would use for a Python dict key (TypeError when there is none)."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, int):
        return str(key) if -_MAX_SAFE <= key <= _MAX_SAFE else js_number(float(key))
    if isinstance(key, float):
        if math.isfinite(key):
            return js_number(key)
        return "NaN" if key != key else ("Infinity" if key > 0 else "-Infinity")
    raise TypeError(f"dict key {key!r} has no JavaScript property name")


def _keys_in_js_order(keys: Iterable[Any]) -> bool:
    """True when every key is a str and none is an array index (the common case, in C)."""
    try:
        return not any(map(str.isdigit, keys))  # str.isdigit raises TypeError on a non-str key
    except TypeError:
        return False


def js_object(d: dict[Any, Any]) -> dict[str, Any]:
    """``d`` with string keys in JS property order: array-index keys ascending, then the others
    in insertion order. Returns ``d`` itself when it already is like that."""
    if _keys_in_js_order(d):
        return d
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[js_key(k)] = v  # a later duplicate keeps the first position, like JS assignment
    index_keys = sorted((k for k in out if is_array_index(k)), key=int)
    if not index_keys:
        return out
    ordered = {k: out[k] for k in index_keys}
    ordered.update((k, v) for k, v in out.items() if k not in ordered)
    return ordered


# --------------------------------------------------------------------------------------------
# js_dumps


class _JSNumber:
    """A number whose JS text differs from Python's ``repr``; written verbatim."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _RawText(str):
    """What ``_JSNumber`` becomes for the verbatim encoder (see ``_string_or_raw``)."""


_UNDEFINED = object()  # what _js makes of MISSING: dropped from objects, null in arrays
_SIMPLE = frozenset({str, bool, type(None)})


def _js_float(x: float) -> Any:
    if x.is_integer():  # False for NaN and infinities
        return int(x) if -_MAX_SAFE <= x <= _MAX_SAFE else _JSNumber(js_number(x))
    if not math.isfinite(x):
        return None
    # Non-integral doubles are below 2^53, where repr has no positive exponent; repr and JS only
    # disagree below 1e-4 (repr switches to exponent form there, JS below 1e-6).
    return x if abs(x) >= 1e-4 else _JSNumber(js_number(x))


def _js_int(n: int) -> Any:
    # A JS peer holds a double: beyond 2^53 it prints the double's shortest digits.
    try:
        return _js_float(float(n))
    except OverflowError:
        return None  # Infinity


def _js(o: Any, dirty: set[int] | None) -> Any:
    """``o`` made writable by the stdlib C encoder with JS output; ``o`` itself when it already is.

    ``dirty`` holds the ids of the exact dicts and lists that need rewriting (see
    ``_dirty_containers``); the others are returned untouched. None means "look at everything"
    (used below values the level walk does not enter: tuples, subclasses...).
    """
    t = type(o)
    if t in _SIMPLE:
        return o
    if t is int:
        return o if -_MAX_SAFE <= o <= _MAX_SAFE else _js_int(o)
    if t is float:
        return _js_float(o)
    if t is dict or t is list:
        if dirty is not None and id(o) not in dirty:
            return o
        return _js_dict(o, dirty) if t is dict else _js_list(o, dirty)
    if o is MISSING:
        return _UNDEFINED
    if isinstance(o, Timestamp):
        return {"physical": _js(o.physical, None), "logical": _js(o.logical, None)}
    if isinstance(o, bool):
        return bool(o)
    if isinstance(o, int):
        return _js(int(o), None)
    if isinstance(o, float):
        return _js_float(float(o))
    if isinstance(o, str):
        return str(o)
    if isinstance(o, dict):
        return _js_dict(dict(o), None)
    if isinstance(o, (list, tuple)):
        return _js_list(list(o), None)
    if isinstance(o, (bytes, bytearray, memoryview)):  # a typed array: {"0":b0,"1":b1,...}
        return {str(i): b for i, b in enumerate(bytes(o))}
    if isinstance(o, (set, frozenset)):  # JS Set
        return {}
    raise TypeError(f"{type(o).__name__} has no JSON form")


_CONTAINERS = frozenset({dict, list})
_NUMBERS = frozenset({int, float})
_PLAIN = _SIMPLE | _CONTAINERS | _NUMBERS
_OK_TYPES = _SIMPLE | _CONTAINERS  # whatever their value


def _of_type(values: Iterable[Any], types: list[type], t: type) -> list[Any]:
    return list(compress(values, map(is_, types, repeat(t))))


def _numbers_ok(values: Iterable[Any], types: list[type], kinds: set[type]) -> bool:
    """Whether the C encoder writes every int and float of ``values`` as JS would (C-speed).

    ``types`` is ``list(map(type, values))`` and ``kinds`` its set.
    """
    if int in kinds:
        ints = _of_type(values, types, int)
        if max(ints) > _MAX_SAFE or min(ints) < -_MAX_SAFE:
            return False
    if float in kinds:
        floats = _of_type(values, types, float)
        if not all(map(math.isfinite, floats)) or any(map(float.is_integer, floats)):
            return False
        return min(map(abs, floats)) >= 1e-4  # see _js_float
    return True


def _bad_owners(items: list[Any], types: list[type], owners: list[int]) -> set[int]:
    """The owners of the items the C encoder would not write as JS does."""
    suspects = compress(zip(items, types, owners), map(not_, map(_OK_TYPES.__contains__, types)))
    return {
        o
        for v, t, o in suspects
        if not (
            (t is int and -_MAX_SAFE <= v <= _MAX_SAFE)
            or (t is float and 1e-4 <= abs(v) < math.inf and not v.is_integer())
        )
    }


def _js_values(values: Any, dirty: set[int] | None) -> list[Any] | None:
    """``values`` passed through ``_js``, or None when none of them changes.

    Scalars are checked in bulk; only child containers cost a Python call each.
    """
    type_list = list(map(type, values))
    types = set(type_list)
    if types <= _SIMPLE:
        return None
    if types <= _PLAIN and _numbers_ok(values, type_list, types):
        if not types & _CONTAINERS:
            return None
        new = [_js(v, dirty) if type(v) in _CONTAINERS else v for v in values]
    else:
        new = list(map(_js, values, repeat(dirty)))
    return None if all(map(is_, new, values)) else new


def _js_list(lst: list[Any], dirty: set[int] | None) -> list[Any]:
    vals = _js_values(lst, dirty)
    if vals is None:
        return lst
    return [None if v is _UNDEFINED else v for v in vals]


def _js_dict(d: dict[Any, Any], dirty: set[int] | None) -> dict[str, Any]:
    ordered = js_object(d)
    vals = _js_values(ordered.values(), dirty)
    if vals is None:
        return ordered
    return {k: v for k, v in zip(ordered, vals) if v is not _UNDEFINED}


def _children(conts: list[Any]) -> list[Any]:
    """The values of the dicts and lists ``conts``: dict values first, then list items."""
    dicts = [c for c in conts if type(c) is dict]
    lists = [c for c in conts if type(c) is not dict]
    return list(chain(chain.from_iterable(map(dict.values, dicts)), chain.from_iterable(lists)))


def _owners(conts: list[Any]) -> list[int]:
    """For each item of ``_children(conts)``, the index of its container in ``conts``."""
    order = [i for i, c in enumerate(conts) if type(c) is dict]
    order += [i for i, c in enumerate(conts) if type(c) is not dict]
    return list(chain.from_iterable(map(repeat, order, map(len, map(conts.__getitem__, order)))))


def _dirty_containers(value: Any) -> set[int]:
    """The ids of the exact dicts and lists that ``_js`` must rewrite, with all their ancestors.

    Empty when the C encoder can write ``value`` as it is (the usual case). The walk is
    breadth-first: each level of the tree is checked with a few C-level passes over all of its
    items at once, so a state of 10^5 nodes costs no Python call per node. Only a level that
    fails the bulk check is searched item by item for the containers to blame.
    """
    levels: list[list[Any]] = []  # the containers at each depth
    blamed: list[set[int]] = []  # per level, the indexes of the containers to rewrite
    conts = [value] if type(value) in _CONTAINERS else []
    while conts:
        if len(levels) >= sys.getrecursionlimit():
            raise RecursionError
        bad: set[int] = set()
        dicts = [c for c in conts if type(c) is dict]
        if dicts and not _keys_in_js_order(chain.from_iterable(dicts)):
            bad.update(i for i, c in enumerate(conts) if type(c) is dict and not _keys_in_js_order(c))
        items = _children(conts)
        item_types = list(map(type, items))
        types = set(item_types)
        if not (types <= _PLAIN and _numbers_ok(items, item_types, types)):
            bad.update(_bad_owners(items, item_types, _owners(conts)))
        levels.append(conts)
        blamed.append(bad)
        conts = list(compress(items, map(_CONTAINERS.__contains__, item_types)))
    dirty: set[int] = set()
    for depth in range(len(levels) - 1, -1, -1):
        conts = levels[depth]
        if depth and blamed[depth]:
            # the owner (in the level above) of each container of this level
            above = levels[depth - 1]
            is_cont = map(_CONTAINERS.__contains__, map(type, _children(above)))
            parent = list(compress(_owners(above), is_cont))
            blamed[depth - 1].update(parent[i] for i in blamed[depth])
        dirty.update(id(conts[i]) for i in blamed[depth])
    return dirty


def _refuse(o: Any) -> Any:
    raise TypeError(f"{type(o).__name__} has no JSON form")


class _NeedsNumbers(Exception):
    """Raised by the fast encoder on a ``_JSNumber``: retry with the verbatim encoder."""


def _needs_numbers(o: Any) -> Any:
    raise _NeedsNumbers


def _number_text(o: Any) -> Any:
    if isinstance(o, _JSNumber):
        return _RawText(o.text)
    return _refuse(o)


def _string_or_raw(s: str) -> str:
    return s if type(s) is _RawText else encode_basestring(s)


_Encoder = Callable[[Any, int], Any]
# Arguments: markers, default, string encoder, indent, key sep, item sep, sort_keys, skipkeys,
# allow_nan. No circularity markers: the level walk has bounded the depth already.
_fast_encoder: _Encoder = c_make_encoder(
    None, _needs_numbers, encode_basestring, None, ":", ",", False, False, True
)
_number_encoder: _Encoder = c_make_encoder(
    None, _number_text, _string_or_raw, None, ":", ",", False, False, True
)

_SURROGATES = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _fix_surrogate(m: re.Match[str]) -> str:
    s = m.group()
    if len(s) == 2:  # a pair split in two code points: JS sees one astral character
        return chr(0x10000 + ((ord(s[0]) - 0xD800) << 10) + (ord(s[1]) - 0xDC00))
    return "\\u%04x" % ord(s)


def js_dumps(value: Any) -> str:
    """``JSON.stringify(value)``, byte for byte once UTF-8 encoded.

    Python ints are JS numbers (beyond 2^53 they print like the double a JS peer would hold),
    ``Timestamp`` is ``{"physical":…,"logical":…}``, ``MISSING`` is ``undefined`` (dropped from
    objects, ``null`` in arrays), tuples are arrays, bytes are typed arrays (``{"0":…}``), sets
    are ``{}``. Other types raise TypeError; a circular value raises ValueError. The result
    never holds a lone surrogate (escaped as ``\\udxxx``, like JS), so it always encodes.
    """
    try:
        v = _js(value, _dirty_containers(value))
    except RecursionError:
        raise ValueError("value is circular or too deeply nested") from None
    if v is _UNDEFINED:
        raise ValueError("MISSING (JS undefined) has no JSON text")
    try:
        text = "".join(_fast_encoder(v, 0))
    except _NeedsNumbers:
        text = "".join(_number_encoder(v, 0))
    if not text.isascii() and _SURROGATES.search(text):
        text = _SURROGATES.sub(_fix_surrogate, text)
    return text


# --------------------------------------------------------------------------------------------
# text and js_loads


def decode_utf8(data: bytes | bytearray | memoryview) -> str:
    """``new TextDecoder().decode(data)``: invalid UTF-8 becomes U+FFFD, one leading BOM is dropped."""
    text = bytes(data).decode("utf-8", "replace")
    return text[1:] if text.startswith("\ufeff") else text


def encode_utf8(text: str) -> bytes:
    """``new TextEncoder().encode(text)``: a lone surrogate becomes U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(
            lambda m: _fix_surrogate(m) if len(m.group()) == 2 else "\ufffd", text
        ).encode("utf-8")


# A JSON string, or an unterminated one up to the end. It always matches where it starts, and
# possessively, so stripping strings is linear even on hostile input.
_STRING = re.compile(r'"[^"\\]*+(?:\\[\s\S][^"\\]*+)*+(?:"|\\?\Z)')
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[{]}")


def nesting_depth(text: str) -> int:
    """Deepest array/object nesting of JSON ``text`` (strings skipped), in C-speed passes."""
    skeleton = _STRING.sub("", text).encode("ascii", "ignore")
    steps = array("b", skeleton.translate(_BRACKET_STEP, _NOT_BRACKET))  # +1 open, -1 close
    return max(accumulate(steps), default=0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def js_loads(data: bytes | bytearray | memoryview | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``JSON.parse`` of UTF-8 bytes (decoded like ``TextDecoder``) or of text.

    Integers without fraction or exponent come back as ``int``, other numbers as ``float``.
    Raises ProtocolError on malformed JSON (including NaN/Infinity, which Python alone accepts)
    and when arrays/objects nest deeper than ``max_depth``. The depth is measured before parsing,
    without recursion, whenever the text has more than ``max_depth`` brackets at all.
    """
    text = data if isinstance(data, str) else decode_utf8(data)
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise ProtocolError(f"JSON nests deeper than {max_depth}")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ProtocolError("JSON nests too deeply to parse") from None
    except ValueError as e:  # includes int literals over 4300 digits, which no JS peer writes
        raise ProtocolError(f"malformed JSON: {e}") from None
