"""Import and export of the original genosdb-server files (sync-protocol.md §5.7).

* ``<room>_graph.msgpack``: zlib (RFC 1950) of MessagePack of the node map
  ``{id: {id, value, edges, timestamp: {physical, logical}}}``;
* ``<room>_timestamp.json``: ``{"physical": …, "logical": …}``, the global timestamp.

Import is defensive (the files may come from anywhere): inflation is bounded, every record is
validated and invalid ones are skipped and counted, and a file that cannot be read at all
raises :class:`~gdbnb.errors.StoreCorruptError` naming it. Export writes MessagePack the way
``@msgpack/msgpack`` does (integral numbers as the smallest int form, other numbers as
float64, JS key order; ``gdbnb.wire.legacy.js_msgpack_packb``) and replaces the files
atomically. Import decodes with plain ``msgpack`` rather than ``wire.legacy.unpack_deflated``
on purpose: that decoder refuses a whole message for one bad key, while a file import keeps
every valid record and counts the others.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import msgpack

from ..core.hlc import Timestamp, parse_timestamp
from ..core.node import MAX_VALUE_DEPTH, MISSING, Node
from ..errors import StoreCorruptError
from ..wire.jsjson import is_array_index
from ..wire.legacy import js_msgpack_packb
from .paths import room_file_stem

__all__ = [
    "import_files",
    "import_files_detailed",
    "export_files",
    "LegacyImport",
    "DEFAULT_MAX_INFLATED",
    "legacy_file_names",
]

log = logging.getLogger(__name__)

#: Largest graph file content accepted after inflating (a "zip bomb" guard).
DEFAULT_MAX_INFLATED = 4 * 1024**3
_MAX_TIMESTAMP_FILE = 64 * 1024
_CHUNK = 1 << 20


class LegacyImport(NamedTuple):
    nodes: list[Node]
    global_ts: Timestamp | None
    #: records dropped because they were not valid nodes
    skipped: int


def legacy_file_names(room: str) -> tuple[str, str]:
    """``(<room>_graph.msgpack, <room>_timestamp.json)`` with the room made file-name safe."""
    stem = room_file_stem(room)
    return f"{stem}_graph.msgpack", f"{stem}_timestamp.json"


# ---------------------------------------------------------------------- import


def _inflate(path: Path, limit: int) -> bytes:
    """Inflate zlib (or gzip: pako auto-detects it) of ``path``, refusing more than ``limit`` bytes."""
    d = zlib.decompressobj(wbits=47)  # 32 + 15: zlib or gzip header, auto-detected
    out = bytearray()
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    out += d.flush()  # the input is all consumed: what is left is small
                    if len(out) > limit:
                        raise StoreCorruptError(f"{path}: inflates to more than {limit} bytes; refused")
                    break
                while chunk:
                    out += d.decompress(chunk, _CHUNK)
                    if len(out) > limit:
                        raise StoreCorruptError(f"{path}: inflates to more than {limit} bytes; refused")
                    chunk = d.unconsumed_tail
                if d.eof:
                    break
            if not d.eof:
                raise StoreCorruptError(f"{path}: truncated compressed data")
    except zlib.error as e:
        raise StoreCorruptError(f"{path}: not a zlib-compressed graph file ({e})") from e
    return bytes(out)


def _json_value(v: Any, depth: int = 0) -> Any:
    """A decoded MessagePack value as the JSON value a JS peer would send for it.

    Raises ValueError for what cannot be a node value (non-finite number, too deep).
    """
    if depth > MAX_VALUE_DEPTH:
        raise ValueError("value nested too deeply")
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("non-finite number")
        return v
    if isinstance(v, dict):
        return {k if isinstance(k, str) else _js_key(k): _json_value(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x, depth + 1) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return {str(i): b for i, b in enumerate(v)}  # what JSON.stringify does to a Uint8Array
    if isinstance(v, msgpack.Timestamp):  # a JS Date: JSON.stringify gives its ISO string
        dt = v.to_datetime()
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    raise ValueError(f"unsupported MessagePack value {type(v).__name__}")


def _js_key(k: Any) -> str:
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, float) and k.is_integer():
        return str(int(k))
    if isinstance(k, (int, float, str)):
        return str(k)
    raise ValueError(f"unsupported map key {type(k).__name__}")


def _record_to_node(key: Any, rec: Any) -> Node | None:
    if not isinstance(key, str) or not key or not isinstance(rec, dict):
        return None
    rid = rec.get("id", key)
    if rid != key:
        return None  # the map key and the record disagree: which one is right is unknowable
    ts = parse_timestamp(rec.get("timestamp"))
    if ts is None:
        return None
    edges = rec.get("edges")
    edges = list(dict.fromkeys(e for e in edges if isinstance(e, str) and e)) if isinstance(edges, list) else []
    value = rec.get("value", MISSING)
    if value is not MISSING:
        try:
            value = _json_value(value)
        except (ValueError, RecursionError):
            return None
    return Node(key, value, edges, ts)


def _read_timestamp_file(path: Path) -> Timestamp | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_TIMESTAMP_FILE + 1)
    except OSError as e:
        raise StoreCorruptError(f"{path}: cannot read ({e})") from e
    if len(raw) > _MAX_TIMESTAMP_FILE:
        raise StoreCorruptError(f"{path}: too large for a timestamp file")
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise StoreCorruptError(f"{path}: not JSON ({e})") from e
    if obj is None:
        return None
    ts = parse_timestamp(obj)
    if ts is None:
        raise StoreCorruptError(f"{path}: not a timestamp {{physical, logical}}")
    return ts


def import_files_detailed(
    graph_file: str | os.PathLike[str],
    timestamp_file: str | os.PathLike[str] | None = None,
    *,
    max_inflated: int = DEFAULT_MAX_INFLATED,
) -> LegacyImport:
    """Read a genosdb-server graph file (and its timestamp file), keeping the valid records."""
    gpath = Path(graph_file)
    data = _inflate(gpath, max_inflated)
    try:
        obj = msgpack.unpackb(data, strict_map_key=False, timestamp=0, unicode_errors="surrogatepass")
    except Exception as e:  # msgpack raises several types (ExtraData, FormatError, StackError, ValueError…)
        raise StoreCorruptError(f"{gpath}: not a MessagePack node map ({type(e).__name__}: {e})") from e
    del data
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise StoreCorruptError(f"{gpath}: holds a {type(obj).__name__}, not a node map")
    nodes: list[Node] = []
    skipped = 0
    for key, rec in obj.items():
        node = _record_to_node(key, rec)
        if node is None:
            skipped += 1
        else:
            nodes.append(node)
    global_ts = _read_timestamp_file(Path(timestamp_file)) if timestamp_file is not None else None
    return LegacyImport(nodes, global_ts, skipped)


def import_files(
    graph_file: str | os.PathLike[str],
    timestamp_file: str | os.PathLike[str] | None = None,
    *,
    max_inflated: int = DEFAULT_MAX_INFLATED,
) -> tuple[list[Node], Timestamp | None]:
    """``(nodes, global_ts)`` from genosdb-server files; logs a warning when records were skipped.

    Use :func:`import_files_detailed` to get the number of skipped records.
    """
    res = import_files_detailed(graph_file, timestamp_file, max_inflated=max_inflated)
    if res.skipped:
        log.warning("%s: skipped %d invalid record(s), imported %d", graph_file, res.skipped, len(res.nodes))
    return res.nodes, res.global_ts


# ---------------------------------------------------------------------- export


def _atomic_write(path: Path, chunks: Iterable[bytes]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _graph_chunks(nodes: list[Node]) -> Iterable[bytes]:
    """Stream the deflated MessagePack node map, one record at a time (bounded memory).

    Records are encoded by ``wire.legacy.js_msgpack_packb`` (the ``@msgpack/msgpack`` rules);
    the map header is the same in every encoder, and the ids follow JS key order.
    """
    z = zlib.compressobj()  # level 6, like pako's default
    ordered = nodes
    if any(is_array_index(n.id) for n in nodes):
        ordered = sorted((n for n in nodes if is_array_index(n.id)), key=lambda n: int(n.id))
        ordered += [n for n in nodes if not is_array_index(n.id)]
    header = msgpack.Packer().pack_map_header(len(ordered))
    buf = [header]
    size = len(header)
    for n in ordered:
        # value MISSING (JS undefined) is written as nil with its key kept, as the JS encoder does
        rec = {"id": n.id, "value": n.value, "edges": n.edges, "timestamp": n.timestamp}
        b = js_msgpack_packb(n.id) + js_msgpack_packb(rec)
        buf.append(b)
        size += len(b)
        if size >= _CHUNK:
            yield z.compress(b"".join(buf))
            buf, size = [], 0
    yield z.compress(b"".join(buf))
    yield z.flush()


def export_files(
    nodes: Iterable[Node],
    global_ts: Timestamp | None,
    directory: str | os.PathLike[str],
    room: str,
) -> tuple[Path, Path]:
    """Write ``<room>_graph.msgpack`` and ``<room>_timestamp.json`` into ``directory``.

    Each file is written to a temporary file, fsynced and renamed over the target, so a
    reader never sees half a file. Returns ``(graph_path, timestamp_path)``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    gname, tname = legacy_file_names(room)
    gpath, tpath = d / gname, d / tname
    node_list = list(nodes.values()) if isinstance(nodes, dict) else list(nodes)
    _atomic_write(gpath, _graph_chunks(node_list))
    ts_text = "null" if global_ts is None else json.dumps(global_ts.to_json(), separators=(",", ":"))
    _atomic_write(tpath, [ts_text.encode()])
    return gpath, tpath

