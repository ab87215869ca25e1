"""JavaScript value semantics that the reference's ``map`` engine relies on (pure helpers).

The reference evaluates queries with plain JS operators, so matching it means reproducing JS
coercions on JSON values: ``ToString``/``ToNumber``, the abstract relational comparison behind
``<``/``>`` (strings compare by UTF-16 code units, anything else numerically, NaN never
compares), strict equality, ``String.prototype.localeCompare`` (ICU root collation) for sorting,
and JS regular expressions. ``MISSING`` plays JS ``undefined``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal
from typing import Any

from ..errors import QueryError
from .node import MISSING

__all__ = [
    "js_to_string",
    "js_to_number",
    "js_less",
    "js_truthy",
    "utf16_less",
    "collation_key",
    "text_normalize",
    "compile_js_regex",
]

# JS WhiteSpace + LineTerminator (what String.prototype.trim and \s know).
_JS_SPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_NUMBER_RE = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)\Z")
_RADIX_RE = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)\Z")


def _is_number(x: Any) -> bool:
    return (type(x) is int or type(x) is float)


def _number_to_string(x: int | float) -> str:
    """``Number.prototype.toString()``: shortest round-trip digits with JS's exponent rules."""
    if type(x) is int and abs(x) < 10**21:
        return str(x)
    x = float(x)
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    _, dig, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, dig))
    k = len(digits)
    n = int(exp) + k  # the decimal point sits after n digits
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mant = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mant}e{'+' if e >= 0 else '-'}{abs(e)}"


def js_to_string(v: Any) -> str:
    """``String(v)`` for a JSON value (arrays join with ",", objects are ``[object Object]``)."""
    if type(v) is str:
        return v
    if v is MISSING:
        return "undefined"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if _is_number(v):
        return _number_to_string(v)
    if isinstance(v, list):
        return ",".join("" if e is None or e is MISSING else js_to_string(e) for e in v)
    return "[object Object]"


def _string_to_number(s: str) -> float:
    s = s.strip(_JS_SPACE)
    if not s:
        return 0.0
    if _NUMBER_RE.match(s):
        return float(s.replace("Infinity", "inf"))
    if _RADIX_RE.match(s):
        return float(int(s, 0))
    return math.nan


def js_to_number(v: Any) -> float:
    """``Number(v)`` for a JSON value; NaN where JS gives NaN."""
    if _is_number(v):
        return v
    if v is None or v is False:
        return 0.0
    if v is True:
        return 1.0
    if type(v) is str:
        return _string_to_number(v)
    if isinstance(v, list):
        return _string_to_number(js_to_string(v))
    return math.nan  # undefined, objects


def js_truthy(v: Any) -> bool:
    if v is None or v is MISSING or v is False:
        return False
    if _is_number(v):
        return v == v and v != 0
    if type(v) is str:
        return v != ""
    return True


def utf16_less(a: str, b: str) -> bool:
    """``a < b`` in JS: by UTF-16 code units. Code points give the same answer unless both
    differing characters are >= U+E000 and one of them is astral (surrogates sort low)."""
    if a.isascii() or b.isascii():
        return a < b
    return a.encode("utf-16-be") < b.encode("utf-16-be")


def _primitive(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return js_to_string(v)
    return v


def js_less(a: Any, b: Any) -> bool | None:
    """The abstract relational comparison ``a < b``: None when undefined (a NaN was involved)."""
    a, b = _primitive(a), _primitive(b)
    if type(a) is str and type(b) is str:
        return utf16_less(a, b)
    x, y = js_to_number(a), js_to_number(b)
    if x != x or y != y:
        return None
    return x < y


# ----------------------------------------------------------------------------- $text

_TEXT_STRIP_MARKS = re.compile("[\u0300-\u036f]")
# JS /[^\w\s]/g without the u flag: \w is ASCII only, \s is Unicode whitespace.
_TEXT_STRIP_PUNCT = re.compile(f"[^A-Za-z0-9_{_JS_SPACE}]")
_ASCII_NON_WORD = {c: None for c in range(128) if not re.match(f"[A-Za-z0-9_{_JS_SPACE}]", chr(c))}


def text_normalize(v: Any) -> str:
    """The reference's ``$text`` folding: ``String(v)``, NFD, drop U+0300-U+036F, lowercase,
    drop everything but ASCII word characters and whitespace (so "ß" or "中" vanish)."""
    s = js_to_string(v)
    if s.isascii():
        return s.lower().translate(_ASCII_NON_WORD)
    s = unicodedata.normalize("NFD", s)
    return _TEXT_STRIP_PUNCT.sub("", _TEXT_STRIP_MARKS.sub("", s).lower())


# ----------------------------------------------------------------------------- localeCompare

# ICU root collation of ASCII as bun (en-US) reports it, primary order; letters get case as a
# tertiary difference (lowercase first). Control characters are completely ignorable.
_ASCII_ORDER = "\t\n\x0b\x0c\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789"
_IGNORABLE = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
# Keys are bytes, compared lexicographically. A weight is one byte (ASCII characters) or a
# region byte followed by the 3-byte code point (everything else), so the code is prefix-free
# and order-preserving: punctuation/symbols < currency < digits < other numbers < letters.
_W_PUNCT_OTHER, _W_DOLLAR, _W_CURRENCY_OTHER = 0x26, 0x27, 0x28
_W_DIGIT0, _W_NUMBER_OTHER, _W_LETTER_A, _W_LETTER_OTHER = 0x30, 0x3A, 0x41, 0x60
_SEC_BASE, _SEC_EXPANSION, _SEC_MARK = b"\x01", b"\x03", 0x04


def _ascii_tables() -> tuple[bytes, bytes]:
    prim, ter = bytearray(256), bytearray(256)
    punct = _ASCII_ORDER[: _ASCII_ORDER.index("$")]
    assert len(punct) < _W_PUNCT_OTHER
    for i, c in enumerate(punct):
        prim[ord(c)] = 1 + i
    prim[ord("$")] = _W_DOLLAR
    for d in range(10):
        prim[0x30 + d] = _W_DIGIT0 + d
    for i in range(26):
        prim[0x61 + i] = prim[0x41 + i] = _W_LETTER_A + i
        ter[0x41 + i] = 2
    return bytes(prim), bytes(ter)


_PRIMARY, _TERTIARY = _ascii_tables()
# Secondary order of the combining marks U+0300-U+036F as ICU has it ("=": same weight);
# other marks follow in code point order.
_MARK_ORDER = (
    "34f 332 313=343 314 301=341 300=340 306 302 30c 30a 342 308 344 30b 303 307 338 327 328 "
    "304 30d=30e=312=315=31a=33d=33e=33f=346=34a=34b=34c=350=351=352=357=35b=35d=35e 316=317="
    "318=319=31c=31d=31e=31f=320=329=32a=32b=32c=32f=333=33a=33b=33c=347=348=349=34d=34e=353="
    "354=355=356=359=35a=35c=35f=362 336=337 335 305 309 30f 310 311 31b 321 322 323 324 325 "
    "326 32d 32e 330 331 334 339 345 358 360 361 363 368 369 364 36a 365 36b 366 36c 36d 367 "
    "36e 36f"
)
_MARK_RANK = {
    int(h, 16): rank for rank, group in enumerate(_MARK_ORDER.split()) for h in group.split("=")
}
# Latin letters ICU sorts as a base letter (or two) with a secondary difference.
_EXPANSIONS = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "ð": "d", "ħ": "h"}


def _primary_other(ch: str, cat: str) -> bytes:
    cp = ord(ch).to_bytes(3, "big")
    if cat == "Nd":
        return bytes((_W_DIGIT0 + unicodedata.digit(ch),))
    if cat[0] == "Z":
        return _PRIMARY[0x20:0x21]
    if cat == "Sc":
        return bytes((_W_CURRENCY_OTHER,)) + cp
    if cat[0] in "PS":
        return bytes((_W_PUNCT_OTHER,)) + cp
    if cat[0] == "N":
        return bytes((_W_NUMBER_OTHER,)) + cp
    return bytes((_W_LETTER_OTHER,)) + cp


def _collation_key_general(s: str) -> tuple[bytes, bytes, bytes]:
    prim, sec, ter = bytearray(), bytearray(), bytearray()
    for c in unicodedata.normalize("NFD", s):
        base = unicodedata.normalize("NFKD", c)
        variant = base != c
        for b in base:
            low = b.lower()
            t = (2 if low != b else 0) + variant
            exp = _EXPANSIONS.get(low)
            for e in exp or low:
                o = ord(e)
                if o < 128:
                    if _PRIMARY[o]:
                        prim.append(_PRIMARY[o])
                        sec += _SEC_BASE
                        ter.append(t)
                    continue
                cat = unicodedata.category(e)
                if cat[0] == "M":
                    sec.append(_SEC_MARK)
                    sec += _MARK_RANK.get(o, 0x100 + o).to_bytes(3, "big")
                elif cat[0] != "C":  # control and format characters are ignorable
                    prim += _primary_other(e, cat)
                    sec += _SEC_BASE
                    ter.append(t)
            if exp:
                sec += _SEC_EXPANSION
    return bytes(prim), bytes(sec), bytes(ter)


def collation_key(s: str) -> tuple[bytes, bytes, bytes]:
    """A sort key approximating ``localeCompare`` (ICU root collation, as bun and Chromium do):
    exact for ASCII (punctuation < digits < letters, case only a tertiary difference, "a" < "A"),
    accents as secondary differences, other scripts after Latin in code point order."""
    if s.isascii():
        b = s.encode("ascii")
        p = b.translate(_PRIMARY, _IGNORABLE)
        return p, _SEC_BASE * len(p), b.translate(_TERTIARY, _IGNORABLE)
    return _collation_key_general(s)


# ----------------------------------------------------------------------------- RegExp

_CLASS_ESCAPES = {
    "d": "0-9",
    "w": "A-Za-z0-9_",
    "s": _JS_SPACE,
}


def _translate_regex(src: str) -> str:
    """JS RegExp source (no u flag) -> Python ``re`` source with the same meaning for the
    common syntax: ASCII ``\\d``/``\\w``, JS whitespace ``\\s``, ``.`` not matching line
    terminators, ``$`` only at the very end, ``(?<name>`` groups, ``[^]``."""
    out: list[str] = []
    i, n, in_class = 0, len(src), False
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n:
            d = src[i + 1]
            i += 2
            if d in "dws":
                out.append(_CLASS_ESCAPES[d] if in_class else f"[{_CLASS_ESCAPES[d]}]")
            elif d in "DWS":
                if in_class:
                    raise QueryError(f"regex {src!r}: \\{d} inside a character class is not supported")
                out.append(f"[^{_CLASS_ESCAPES[d.lower()]}]")
            elif d.isalnum() and d not in "bBnrtfvux0123456789c":
                out.append(re.escape(d))  # JS (no u flag): an unknown escape is the letter itself
            else:
                out.append("\\" + d)
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
        elif c == "[":
            if src.startswith("[^]", i):
                out.append("[\\s\\S]")
                i += 3
                continue
            in_class = True
            out.append(c)
            if src.startswith("[]", i):  # JS: an empty class matches nothing
                out[-1] = "(?!)"
                in_class = False
                i += 2
                continue
        elif c == ".":
            out.append("[^\n\r\u2028\u2029]")
        elif c == "$":
            out.append(r"\Z")
        elif c == "(" and src.startswith("(?<", i) and not src.startswith(("(?<=", "(?<!"), i):
            out.append("(?P<")
            i += 3
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def compile_js_regex(src: str, what: str) -> re.Pattern[str]:
    """``new RegExp(src, "i")`` as a Python pattern; QueryError when it does not compile."""
    try:
        return re.compile(_translate_regex(src), re.IGNORECASE)
    except re.error as e:
        raise QueryError(f"{what}: invalid regular expression {src!r}: {e}") from None
