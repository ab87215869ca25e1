"""The ``map`` query engine: compile a GenosDB query once, run it over the graph (pure).

What the reference engine (GenosDB 0.25 ``map``, verified by running it) does, and we copy:

* A field key reads the dotted path from ``node.value``; only when that gives undefined is the
  same path read from the node record itself, so ``{id: "x"}``, ``{"timestamp.physical": …}``
  or ``{edges: {$exists: true}}`` work, but a value field named ``id`` wins over the node id.
  Path steps go into objects and arrays (``"tags.0"``, ``"tags.length"``), never into strings.
* A bare operand is JS ``===``: ``{tags: "x"}`` does not match ``tags: ["x"]`` (use ``$in``),
  ``{n: 1}`` matches ``1.0`` but not ``true``, and objects/arrays never equal anything.
* ``$gt``/``$gte``/``$lt``/``$lte``/``$between`` are JS ``<``/``>``: two strings compare by
  UTF-16 code units, everything else numerically after ``Number()`` (``"10" > 9``, ``null`` is 0,
  a missing field is NaN and never compares, arrays compare as their joined string).
* ``$ne`` matches missing fields; ``$exists`` tests "not undefined" (``null`` exists).
* ``$in`` (operand a list): a field array matches if any entry is in the list.
* ``$text``: ``String(field)`` folded (NFD, accents and non-ASCII-word characters dropped,
  lowercase, punctuation removed without a space), then substring search; an array matches if
  any entry does; a missing field is the string "undefined".
* ``$like`` and ``$regex`` are case-insensitive JS regexes on string fields only; ``$like``
  turns ``%``/``_`` into ``.*``/``.`` and leaves the rest of the pattern as regex syntax.
* ``$and``/``$or``/``$not`` at node level combine sub-queries; inside a field they apply the
  sub-query to the field's value (``{age: {$or: [{$lt: 5}, {$gt: 9}]}}``).
* ``$startsWith``/``$endsWith``/``$contains`` exist in the engine though undocumented.
* ``$edge`` (top level): the rest of the query selects start nodes; the result is every node
  reachable from them (breadth first, cycle-safe, start node excluded) matching the sub-query,
  in start-node order then BFS order, without duplicates. Nested inside ``$and``/``$or``/``$not``
  it is a predicate: "has a descendant matching".
* Results without ``field`` come in JS object key order: ids that are array indices ("0",
  "17") first, numerically, then the others in insertion order.
* Sorting by ``field`` (read from ``value`` only) is stable: two strings by ``localeCompare``
  (ICU collation, not code units), anything else by ``Number(a ?? 0) - Number(b ?? 0)``, so a
  missing field sorts as 0; ``desc`` reverses the comparator, so ties keep insertion order.
* Then ``$after`` drops everything up to the cursor, ``$before`` keeps what precedes its cursor
  (an unknown cursor gives ``[]``), and ``$limit`` keeps the first N (``$limit`` 0 = no limit,
  and ``$before`` + ``$limit`` gives the first N before the cursor, not the last N).

Deliberate differences: an unknown operator, an operand of the wrong type or a regex that does
not compile raises QueryError (the reference throws for some, silently matches nothing for
others); JS prototype properties (``"constructor"``) are not reachable through paths.
"""

from __future__ import annotations

import heapq
import operator
from collections import deque
from functools import cmp_to_key
from typing import Any, Callable, Iterable, Mapping

from ..errors import QueryError
from .node import MISSING, Node
from .jsvalues import (
    collation_key,
    compile_js_regex,
    js_less,
    js_to_number,
    js_truthy,
    text_normalize,
)

__all__ = ["CompiledQuery", "compile_query", "run_map"]

Nodes = Mapping[str, Node]
# A predicate receives its target (a Node at node level, a JSON value inside field-level
# $and/$or/$not) and the graph (for $edge).
Pred = Callable[[Any, Nodes], bool]
Test = Callable[[Any], bool]

_NODE_KEYS = frozenset(("id", "value", "edges", "timestamp"))
_EMPTY: Nodes = {}
_NUMBER_TYPES = frozenset((int, float))
_node_id = operator.attrgetter("id")


def _always(_t: Any, _g: Nodes) -> bool:
    return True


# ----------------------------------------------------------------------------- path access


def _step(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, MISSING)
    if isinstance(obj, list):
        if key == "length":
            return len(obj)
        if key.isdigit() and (key == "0" or key[0] != "0") and int(key) < len(obj):
            return obj[int(key)]
    return MISSING


def _path_getter(path: str) -> Callable[[Any], Any]:
    """``path.split(".")`` walked like the reference: undefined as soon as a step is missing."""
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]

        def get1(obj: Any) -> Any:
            return obj.get(key, MISSING) if type(obj) is dict else _step(obj, key)

        return get1

    def get(obj: Any) -> Any:
        for p in parts:
            obj = _step(obj, p)
            if obj is MISSING:
                break
        return obj

    return get


def _node_record(n: Node) -> dict[str, Any]:
    return {"id": n.id, "value": n.value, "edges": n.edges, "timestamp": n.timestamp.to_json()}


def _field_reader(path: str, node_level: bool) -> Callable[[Any], Any]:
    """Reads ``path`` from the target's value, falling back to the target record itself."""
    get = _path_getter(path)
    if node_level:
        if path.split(".")[0] not in _NODE_KEYS:
            return lambda n: get(n.value)

        def read_node(n: Node) -> Any:
            x = get(n.value)
            return get(_node_record(n)) if x is MISSING else x

        return read_node

    def read_value(v: Any) -> Any:
        x = get(v.get("value", MISSING)) if type(v) is dict else MISSING
        return get(v) if x is MISSING else x

    return read_value


# ----------------------------------------------------------------------------- operators


def _scalar(op: str, x: Any) -> Any:
    if isinstance(x, (dict, list)):
        raise QueryError(f"{op} needs a string, number, boolean or null operand, not {type(x).__name__}")
    return x


def _equals_test(x: Any) -> Test:
    if type(x) is str:
        return lambda v: v == x and type(v) is str
    if type(x) is int or type(x) is float:
        return lambda v: (type(v) is int or type(v) is float) and v == x
    return lambda v: v is x  # True, False, None


def _cmp_test(op: str, x: Any) -> Test:
    _scalar(op, x)
    if (type(x) is int or type(x) is float):
        # fast path for the common numeric case; everything else goes through js_less
        if op == "$gt":
            return lambda v: v > x if (type(v) is int or type(v) is float) else js_less(x, v) is True
        if op == "$lt":
            return lambda v: v < x if (type(v) is int or type(v) is float) else js_less(v, x) is True
        if op == "$gte":
            return lambda v: v >= x if (type(v) is int or type(v) is float) else js_less(v, x) is False
        return lambda v: v <= x if (type(v) is int or type(v) is float) else js_less(x, v) is False
    if op == "$gt":
        return lambda v: js_less(x, v) is True
    if op == "$lt":
        return lambda v: js_less(v, x) is True
    if op == "$gte":
        return lambda v: js_less(v, x) is False
    return lambda v: js_less(x, v) is False


def _in_test(x: Any) -> Test:
    if not isinstance(x, list):
        raise QueryError(f"$in needs a list operand, not {type(x).__name__}")
    tests = [_equals_test(e) for e in x if not isinstance(e, (dict, list))]

    def one(v: Any) -> bool:
        return any(t(v) for t in tests)

    return lambda v: any(map(one, v)) if isinstance(v, list) else one(v)


def _between_test(x: Any) -> Test:
    if not isinstance(x, list) or len(x) != 2:
        raise QueryError(f"$between needs a list of two bounds, not {x!r}")
    lo, hi = _cmp_test("$gte", x[0]), _cmp_test("$lte", x[1])
    return lambda v: lo(v) and hi(v)


def _string_op_test(op: str, x: Any) -> Test:
    if type(x) is not str:
        raise QueryError(f"{op} needs a string operand, not {type(x).__name__}")
    if op == "$startsWith":
        return lambda v: type(v) is str and v.startswith(x)
    if op == "$endsWith":
        return lambda v: type(v) is str and v.endswith(x)
    return lambda v: type(v) is str and x in v


def _text_test(x: Any) -> Test:
    if type(x) is not str and not (type(x) is int or type(x) is float):
        raise QueryError(f"$text needs a string operand, not {type(x).__name__}")
    term = text_normalize(x)

    def test(v: Any) -> bool:
        if isinstance(v, list):
            return any(term in text_normalize(e) for e in v)
        return term in text_normalize(v)

    return test


def _regex_test(op: str, x: Any) -> Test:
    if op == "$regex" and isinstance(x, dict) and type(x.get("$regex")) is str:
        x = x["$regex"]  # the reference reads `operand.$regex || operand`
    if type(x) is not str:
        raise QueryError(f"{op} needs a string pattern, not {type(x).__name__}")
    src = x.replace("%", ".*").replace("_", ".") if op == "$like" else x
    if op == "$like":
        src = f"^{src}$"
    search = compile_js_regex(src, op).search
    return lambda v: type(v) is str and search(v) is not None


def _exists_test(x: Any) -> Test:
    want = js_truthy(x)
    return lambda v: (v is not MISSING) is want


def _field_op(op: str, x: Any) -> Test:
    """One operator of a field condition, as a test on the field's value."""
    if op == "$eq":
        return _equals_test(_scalar(op, x))
    if op == "$ne":
        eq = _equals_test(_scalar(op, x))
        return lambda v: not eq(v)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _cmp_test(op, x)
    if op == "$in":
        return _in_test(x)
    if op == "$between":
        return _between_test(x)
    if op == "$exists":
        return _exists_test(x)
    if op in ("$startsWith", "$endsWith", "$contains"):
        return _string_op_test(op, x)
    if op == "$text":
        return _text_test(x)
    if op in ("$like", "$regex"):
        return _regex_test(op, x)
    if op in ("$and", "$or", "$not"):
        pred = _logical(op, x, node_level=False)
        return lambda v: pred(v, _EMPTY)
    if op == "$edge":
        raise QueryError("$edge applies to nodes, not to a field")
    raise QueryError(f"unknown operator {op}")


def _all(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda v: a(v) and b(v)
    return lambda v: all(t(v) for t in tests)


def _field_test(cond: Any) -> Test:
    if isinstance(cond, list):
        raise QueryError("a field condition cannot be a list (use $in for membership)")
    if not isinstance(cond, dict):
        return _equals_test(cond)
    tests: list[Test] = []
    for op, x in cond.items():
        if not op.startswith("$"):
            raise QueryError(
                f"unknown operator {op!r} in a field condition (to reach a nested field use a dotted key)"
            )
        tests.append(_field_op(op, x))
    return _all(tests) if tests else (lambda v: True)


# ----------------------------------------------------------------------------- node level


def _logical(op: str, x: Any, node_level: bool) -> Pred:
    if op == "$not":
        if not isinstance(x, dict):
            raise QueryError(f"$not needs a query object, not {type(x).__name__}")
        sub = _compile(x, node_level)
        return lambda t, g: not sub(t, g)
    if not isinstance(x, list) or not all(isinstance(q, dict) for q in x):
        raise QueryError(f"{op} needs a list of query objects")
    subs = [_compile(q, node_level) for q in x]
    if op == "$and":
        return lambda t, g: all(s(t, g) for s in subs)
    return lambda t, g: any(s(t, g) for s in subs)


def _descendants(start: Node, nodes: Nodes, match: Pred) -> list[Node]:
    """Nodes reachable from ``start`` (breadth first, each once, ``start`` itself excluded)
    that satisfy ``match``, in visiting order: the reference's ``$edge`` traversal."""
    queue = deque(start.edges)
    seen = set(start.edges)
    seen.add(start.id)
    found: list[Node] = []
    while queue:
        n = nodes.get(queue.popleft())
        if n is None:
            continue
        if match(n, nodes):
            found.append(n)
        for e in n.edges:
            if e not in seen:
                seen.add(e)
                queue.append(e)
    return found


def _edge_sub(x: Any) -> Pred:
    if not isinstance(x, dict):
        raise QueryError(f"$edge needs a query object, not {type(x).__name__}")
    return _compile(x, node_level=True)


def _field_pred(key: str, cond: Any, node_level: bool) -> Pred:
    read, test = _field_reader(key, node_level), _field_test(cond)
    return lambda t, g: test(read(t))


_NUMERIC_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _scan_term(i: int, key: str, cond: Any, ns: dict[str, Any]) -> str:
    """Python source testing entry ``key: cond`` of a node-level query inside the generated
    scan; constants and closures are passed through ``ns``, never written into the source."""
    if key.startswith("$") or "." in key or key in _NODE_KEYS:
        ns[f"P{i}"] = _compile({key: cond}, node_level=True)
        return f"P{i}(n, g)"
    ns[f"K{i}"] = key
    ns[f"T{i}"] = _field_test(cond)
    if type(cond) is str:
        ns[f"C{i}"] = cond
        return f"v.get(K{i}) == C{i}"
    if isinstance(cond, dict) and len(cond) == 1:
        op, c = next(iter(cond.items()))
        if op in _NUMERIC_OPS and (type(c) is int or type(c) is float):
            ns[f"C{i}"] = c
            return f"(x {_NUMERIC_OPS[op]} C{i} if (type(x := v.get(K{i}, M)) is float or type(x) is int) else T{i}(x))"
    return f"T{i}(v.get(K{i}, M))"


def _make_scan(query: dict[str, Any], pred: Pred) -> Callable[[Iterable[Node], Nodes], list[Node]]:
    """One generated list comprehension for the whole node-level query (a closure call per
    node and condition would cost 3x more at 100k nodes). Nodes whose value is not an object
    take the general predicate."""
    if not query:
        return lambda vals, g: list(vals)
    ns: dict[str, Any] = {"M": MISSING, "slow": pred}
    terms = " and ".join(_scan_term(i, k, c, ns) for i, (k, c) in enumerate(query.items()))
    src = (
        "def scan(vals, g):\n"
        f"    return [n for n in vals if (type(v := n.value) is dict and {terms})"
        " or (type(v) is not dict and slow(n, g))]\n"
    )
    exec(src, ns)
    return ns["scan"]


def _compile(query: dict[str, Any], node_level: bool) -> Pred:
    preds: list[Pred] = []
    for key, cond in query.items():
        if type(key) is not str:
            raise QueryError(f"query keys must be strings, not {key!r}")
        if key.startswith("$"):
            if key in ("$and", "$or", "$not"):
                preds.append(_logical(key, cond, node_level))
            elif key == "$edge" and node_level:
                sub = _edge_sub(cond)
                preds.append(lambda n, g, sub=sub: bool(_descendants(n, g, sub)))
            elif node_level:
                raise QueryError(f"unknown top-level operator {key} (field operators go inside a field)")
            else:
                test = _field_op(key, cond)
                preds.append(lambda t, g, test=test: test(t))
            continue
        preds.append(_field_pred(key, cond, node_level))
    if not preds:
        return _always
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda t, g: a(t, g) and b(t, g)
    return lambda t, g: all(p(t, g) for p in preds)


#: ``Graph.lookup_index``: key -> {string value -> ids} (None when not indexed)
Lookup = Callable[[str], "dict[str, dict[str, None]] | None"]


class CompiledQuery:
    """A validated query. ``matches`` tests the start-node part (everything but a top-level
    ``$edge``); ``edge`` is the compiled ``$edge`` sub-query or None."""

    __slots__ = ("source", "_pred", "_scan", "edge", "uses_edges", "lookup")

    def __init__(self, source: dict[str, Any], rest: dict[str, Any], edge: Pred | None) -> None:
        self.source = source
        self._pred = _compile(rest, node_level=True)
        self._scan = _make_scan(rest, self._pred)
        self.edge = edge
        #: True when any ``$edge`` occurs: the result then depends on other nodes too.
        self.uses_edges = _mentions_edge(source)
        #: ``(key, string)`` of a plain top-level equality a lookup index can answer, or None.
        self.lookup = next(
            ((k, c) for k, c in rest.items() if type(c) is str and type(k) is str and _indexable_key(k)), None
        )

    def matches(self, node: Node, nodes: Nodes = _EMPTY) -> bool:
        """Does ``node`` satisfy the query? ``nodes`` is needed only by a nested ``$edge``."""
        return self._pred(node, nodes)

    def select(self, nodes: Nodes, lookup: Lookup | None = None) -> list[Node]:
        """The unsorted result: matching nodes, or with ``$edge`` the matching descendants.

        ``lookup(key)`` (``Graph.lookup_index``) may answer the query's plain string equality
        without a scan; it is used only when it leaves at most one candidate, where the
        result order cannot differ from a scan's.
        """
        starts = self._starts_by_lookup(nodes, lookup) if lookup is not None and self.lookup else None
        if starts is None:
            starts = _js_key_order(self._scan(nodes.values(), nodes))
        if self.edge is None:
            return starts
        out: dict[str, Node] = {}
        for s in starts:
            if s.edges:
                for d in _descendants(s, nodes, self.edge):
                    out.setdefault(d.id, d)
        return list(out.values())

    def _starts_by_lookup(self, nodes: Nodes, lookup: Lookup) -> list[Node] | None:
        key, want = self.lookup  # type: ignore[misc]
        index = lookup(key)
        if index is None:
            return None
        ids = index.get(want)
        if not ids:
            return []
        if len(ids) > 1:
            return None
        n = nodes.get(next(iter(ids)))
        return [n] if n is not None and self._pred(n, nodes) else []

    def __repr__(self) -> str:
        return f"CompiledQuery({self.source!r})"


def _indexable_key(key: str) -> bool:
    """A key read from ``node.value`` only, and never from an array or string (see _step)."""
    return bool(key) and key[0] != "$" and "." not in key and key not in _NODE_KEYS and key != "length" and not key.isdigit()


def _mentions_edge(q: Any) -> bool:
    if isinstance(q, dict):
        return any(k == "$edge" or _mentions_edge(v) for k, v in q.items())
    if isinstance(q, list):
        return any(_mentions_edge(v) for v in q)
    return False


def compile_query(query: dict[str, Any] | None) -> CompiledQuery:
    """Validate and compile a ``map`` query; QueryError explains what is wrong."""
    if query is None:
        query = {}
    if not isinstance(query, dict):
        raise QueryError(f"a query must be an object, not {type(query).__name__}")
    rest = {k: v for k, v in query.items() if k != "$edge"}
    edge = _edge_sub(query["$edge"]) if "$edge" in query else None
    return CompiledQuery(query, rest, edge)


# ----------------------------------------------------------------------------- ordering


def _is_array_index(s: str) -> bool:
    return s.isdigit() and s.isascii() and (s == "0" or s[0] != "0") and int(s) < 2**32 - 1


def _js_key_order(nodes: list[Node]) -> list[Node]:
    """``Object.values`` order: array-index ids first (numerically), then insertion order."""
    if not any(map(str.isdigit, map(_node_id, nodes))):
        return nodes
    idx = [n for n in nodes if n.id[:1].isdigit() and _is_array_index(n.id)]
    if not idx:
        return nodes
    idx.sort(key=lambda n: int(n.id))
    ids = {n.id for n in idx}
    return idx + [n for n in nodes if n.id not in ids]


def _js_compare(a: Any, b: Any) -> float:
    """The reference's comparator on two field values (NaN counts as "equal")."""
    if type(a) is str and type(b) is str:
        ka, kb = collation_key(a), collation_key(b)
        return (ka > kb) - (ka < kb)
    x = js_to_number(0 if a is MISSING or a is None else a)
    y = js_to_number(0 if b is MISSING or b is None else b)
    d = x - y
    return 0 if d != d else d


def _sort_keys(values: list[Any]) -> list[Any] | None:
    """Keys whose natural order equals the comparator's, or None if the values are mixed
    (then only the comparator itself reproduces the reference)."""
    types = set(map(type, values))
    if types <= _NUMBER_TYPES:
        return values
    if types == {str}:
        return list(map(collation_key, values))
    if str in types:
        return None
    keys = [js_to_number(0 if v is MISSING or v is None else v) for v in values]
    return None if any(k != k for k in keys) else keys


def _check_options(field: Any, order: Any, limit: Any, after: Any, before: Any) -> None:
    if field is not None and type(field) is not str:
        raise QueryError(f"field must be a string, not {type(field).__name__}")
    if order not in ("asc", "desc"):
        raise QueryError(f"order must be 'asc' or 'desc', not {order!r}")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise QueryError(f"$limit must be a non-negative integer, not {limit!r}")
    for name, c in (("$after", after), ("$before", before)):
        if c is not None and type(c) is not str:
            raise QueryError(f"{name} must be a node id string, not {type(c).__name__}")


def _paginate(items: list[Node], limit: int | None, after: str | None, before: str | None) -> list[Node]:
    if after:
        pos = next((i for i, n in enumerate(items) if n.id == after), -1)
        items = items[pos + 1 :] if pos >= 0 else []
    if before:
        pos = next((i for i, n in enumerate(items) if n.id == before), -1)
        items = items[:pos] if pos >= 0 else []
    return items[:limit] if limit else items


def run_map(
    nodes: Nodes,
    query: dict[str, Any] | CompiledQuery | None = None,
    *,
    field: str | None = None,
    order: str = "asc",
    limit: int | None = None,
    after: str | None = None,
    before: str | None = None,
    lookup: Lookup | None = None,
) -> list[Node]:
    """The result of ``db.map({query, field, order, $limit, $after, $before})``.

    ``lookup`` is ``Graph.lookup_index`` of the graph holding ``nodes`` (optional; it only
    makes unique-value lookups faster, never changes a result).
    """
    _check_options(field, order, limit, after, before)
    cq = query if isinstance(query, CompiledQuery) else compile_query(query)
    items = cq.select(nodes, lookup)
    if not field:
        return _paginate(items, limit, after, before)
    get = _path_getter(field)
    values = [get(n.value) for n in items]
    keys = _sort_keys(values)
    desc = order == "desc"
    if keys is None:
        sign = -1 if desc else 1
        pairs = sorted(zip(values, items), key=cmp_to_key(lambda p, q: sign * _js_compare(p[0], q[0])))
        return _paginate([n for _, n in pairs], limit, after, before)
    order_ix = range(len(items))
    if limit and limit < len(items) and not (after or before):
        pick = heapq.nlargest if desc else heapq.nsmallest
        chosen = pick(limit, order_ix, key=keys.__getitem__)
    else:
        chosen = sorted(order_ix, key=keys.__getitem__, reverse=desc)
    return _paginate([items[i] for i in chosen], limit, after, before)
