"""``python -m gdbnb [ROOM]``: a persistent GenosDB peer with a status page, like GenosSRV.

Configuration: flags, else the environment (GenosSRV's names where the concept is the same),
else embedded defaults: a SQLite store in the data folder, the embedded relay on, GenosDB's
public relays, the HTTP server on 127.0.0.1:8080. One port serves the status page, the SSE
stream, the JSON API and the embedded relay (WebSocket upgrade on ``/``).

Start order: the store is opened first (a second instance on the same store stops here with
a clear error, before any port or relay is touched), then the HTTP server, then the network.
SIGINT/SIGTERM: leave the room (bye), flush the store, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import GdbnbError, StoreError

__all__ = ["main", "build_parser", "Config", "resolve_config", "run"]

log = logging.getLogger("gdbnb")

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
#: how long leaving the room and flushing may take before we give up (exit 1)
SHUTDOWN_TIMEOUT = 10.0
#: loggers of transient network noise, kept at WARNING unless --log-level debug
_NOISY_LOGGERS = ("gdbnb.relay_pool", "gdbnb.room", "gdbnb.peer", "gdbnb.relay", "gdbnb.relay.ws",
                  "gdbnb.relay.tornado", "websockets", "aioice", "aiortc", "tornado.access", "tornado.general")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass
class Config:
    """Everything ``run`` needs, resolved from flags, environment and defaults."""

    room: str = "default"
    db_path: str | None = None  # None: the default data folder
    relay_urls: list[str] | None = None  # None: GenosDB's public relays
    relay: bool = True  # embedded relay
    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    password: str | None = None
    presence: bool = False
    oplog_size: int | None = None
    import_path: str | None = None
    export_dir: str | None = None
    log_level: str = "info"
    token: str | None = None
    rtc: bool = True
    loopback: bool = False
    env_used: list[str] = field(default_factory=list)


def _env_bool(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SystemExit(f"gdbnb: error: {name}={value!r} is not a boolean (use 1/0, on/off, true/false)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gdbnb",
        description=(
            "Run a persistent GenosDB peer (like GenosSRV) with a status page, an SSE stream and a "
            "JSON API. It keeps the room's graph in SQLite, syncs with browsers over WebRTC and "
            "serves an embedded Nostr relay that GenosDB apps can use in rtc.relayUrls."
        ),
        epilog=(
            "Environment variables (flags win): GDB_ROOM, GDB_DB_PATH, GDB_RELAY_URLS, GDB_RELAY, "
            "PORT, GDB_HOST, GDB_PASSWORD, GDB_TOKEN, GDB_OPLOG_SIZE, GDB_LOG_LEVEL, GDB_DATA_DIR "
            "(folder of the default stores). The status page is http://HOST:PORT/gdb/ and the "
            "embedded relay ws://HOST:PORT (same port). Writes through the API need the token "
            "printed at start; when bound to a non-loopback address, everything does."
        ),
    )
    p.add_argument("room_arg", nargs="?", metavar="ROOM",
                   help="GenosDB database name (gdb('ROOM') in the browser). Default: $GDB_ROOM, else 'default'.")
    p.add_argument("--db-path", dest="db_path", metavar="FILE",
                   help="SQLite store file (env GDB_DB_PATH). Default: <data folder>/<ROOM>.sqlite.")
    p.add_argument("--relay-urls", dest="relay_urls", metavar="URLS",
                   help="comma-separated Nostr relays to signal through, replacing GenosDB's public "
                        "list (env GDB_RELAY_URLS; empty: none). The embedded relay is always added when on.")
    p.add_argument("--relay", dest="relay", action=argparse.BooleanOptionalAction, default=None,
                   help="serve the embedded Nostr relay on the HTTP port (env GDB_RELAY; default on).")
    p.add_argument("--port", type=int, metavar="N",
                   help=f"HTTP (and relay) port (env PORT; default {DEFAULT_PORT}; 0 picks a free one).")
    p.add_argument("--host", metavar="ADDR",
                   help=f"address to bind (env GDB_HOST; default {DEFAULT_HOST}). A non-loopback address "
                        "makes every endpoint require the token.")
    p.add_argument("--password", metavar="PW",
                   help="room password: encrypts the WebRTC signaling like gdb(..., {password}) (env GDB_PASSWORD).")
    p.add_argument("--room", dest="presence", action="store_true", default=False,
                   help="also join the presence room app-sync-ROOM, like GenosSRV --room.")
    p.add_argument("--oplog-size", dest="oplog_size", type=int, metavar="N",
                   help="operations kept for delta sync (env GDB_OPLOG_SIZE; default 1000, like GenosSRV).")
    p.add_argument("--import", dest="import_path", metavar="PATH",
                   help="merge genosdb-server files into the store before serving: ROOM_graph.msgpack "
                        "(its ROOM_timestamp.json is read when next to it) or the folder holding them.")
    p.add_argument("--export", dest="export_dir", metavar="DIR",
                   help="write the store as genosdb-server files (ROOM_graph.msgpack, ROOM_timestamp.json) "
                        "into DIR, then exit without serving.")
    p.add_argument("--token", metavar="TOKEN",
                   help="API token (env GDB_TOKEN). Default: a fresh random token, printed at start.")
    p.add_argument("--no-rtc", dest="rtc", action="store_false", default=True,
                   help="no network at all: data API and status page only (offline use, tests).")
    p.add_argument("--loopback", action="store_true", default=False,
                   help="offer loopback ICE candidates, so peers on this machine can meet (tests).")
    p.add_argument("--log-level", dest="log_level", metavar="LEVEL",
                   choices=["debug", "info", "warning", "error"],
                   help="debug, info (default: one line per state change), warning or error (env GDB_LOG_LEVEL).")
    return p


def resolve_config(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    """Flags, else environment, else defaults."""
    env = dict(os.environ if env is None else env)
    c = Config()
    used: list[str] = []

    def from_env(name: str) -> str | None:
        v = env.get(name)
        if v is not None:
            used.append(name)
        return v

    c.room = args.room_arg or from_env("GDB_ROOM") or "default"
    c.db_path = args.db_path or from_env("GDB_DB_PATH") or None
    raw_urls = args.relay_urls if args.relay_urls is not None else from_env("GDB_RELAY_URLS")
    if raw_urls is not None:
        c.relay_urls = [u.strip() for u in raw_urls.split(",") if u.strip()]
    if args.relay is not None:
        c.relay = args.relay
    elif (v := from_env("GDB_RELAY")) is not None:
        c.relay = _env_bool(v, "GDB_RELAY")
    port = args.port if args.port is not None else from_env("PORT")
    try:
        c.port = int(port) if port not in (None, "") else DEFAULT_PORT
    except ValueError:
        raise SystemExit(f"gdbnb: error: PORT={port!r} is not a number") from None
    if not 0 <= c.port <= 65535:
        raise SystemExit(f"gdbnb: error: port {c.port} out of range")
    c.host = args.host or from_env("GDB_HOST") or DEFAULT_HOST
    c.password = args.password or from_env("GDB_PASSWORD") or None
    c.presence = bool(args.presence)
    size = args.oplog_size if args.oplog_size is not None else from_env("GDB_OPLOG_SIZE")
    if size not in (None, ""):
        try:
            c.oplog_size = int(size)  # type: ignore[arg-type]
        except ValueError:
            raise SystemExit(f"gdbnb: error: GDB_OPLOG_SIZE={size!r} is not a number") from None
        if c.oplog_size < 1:
            raise SystemExit("gdbnb: error: the oplog size must be at least 1")
    c.import_path = args.import_path
    c.export_dir = args.export_dir
    c.log_level = args.log_level or (from_env("GDB_LOG_LEVEL") or "info").lower()
    if c.log_level not in ("debug", "info", "warning", "error"):
        raise SystemExit(f"gdbnb: error: unknown log level {c.log_level!r}")
    c.token = args.token or from_env("GDB_TOKEN") or None
    c.rtc = bool(args.rtc)
    c.loopback = bool(args.loopback)
    c.env_used = used
    return c


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    if level != "debug":
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


# ---------------------------------------------------------------------- run


def _rtc_options(c: Config, own_relay: str | None) -> dict[str, Any]:
    """Options of ``SyncNode`` (gdbnb.net.node) from the configuration."""
    from .wire.nostr import DEFAULT_RELAY_URLS

    urls = list(DEFAULT_RELAY_URLS) if c.relay_urls is None else list(c.relay_urls)
    if own_relay is not None and own_relay not in urls:
        urls.append(own_relay)  # like GenosSRV with GDB_RELAY=1
    opts: dict[str, Any] = {"relay_urls": urls}
    if c.password:
        opts["password"] = c.password
    if c.presence:
        opts["presence"] = True
    if c.loopback:
        opts["loopback"] = True
    return opts


def _find_legacy_files(path: str, room: str) -> tuple[Path, Path | None]:
    from .store.legacy_files import legacy_file_names

    p = Path(path).expanduser()
    gname, tname = legacy_file_names(room)
    if p.is_dir():
        graph, ts = p / gname, p / tname
        if not graph.exists():
            candidates = sorted(p.glob("*_graph.msgpack"))
            if len(candidates) != 1:
                raise SystemExit(f"gdbnb: error: no {gname} in {p}")
            graph = candidates[0]
            ts = graph.with_name(graph.name[: -len("_graph.msgpack")] + "_timestamp.json")
    else:
        graph = p
        ts = p.with_name(p.name[: -len("_graph.msgpack")] + "_timestamp.json") if p.name.endswith("_graph.msgpack") else p.with_name(tname)
    if not graph.exists():
        raise SystemExit(f"gdbnb: error: {graph} does not exist")
    return graph, ts if ts is not None and ts.exists() else None


async def _import(db: Any, path: str) -> None:
    from .store.legacy_files import import_files

    graph, ts_file = _find_legacy_files(path, db.room)
    nodes, global_ts = await asyncio.to_thread(import_files, graph, ts_file)
    data = {n.id: n.to_wire() for n in nodes}
    res = await db.merge_full_state(data, [], global_ts.to_json() if global_ts else None, "import")
    log.info("imported %s: %d node(s) read, %d added or updated", graph, len(nodes), len(res.changes))


async def _export(db: Any, directory: str) -> None:
    from .store.legacy_files import export_files

    g = db.graph
    gpath, tpath = await asyncio.to_thread(export_files, list(g.nodes.values()), g.global_ts, directory, db.room)
    log.info("exported %d node(s) to %s and %s", len(g.nodes), gpath, tpath)


def _describe(name: str, p: Any) -> tuple[int, str] | None:
    """``(level, message)`` for a bus event worth a log line, else None.

    Peer joins/leaves and sync served/applied/failed are logged once, by the network layer
    (logger ``gdbnb.node``, which library users get too); here they only show at debug level.
    """
    get = (lambda k, d=None: p.get(k, d)) if isinstance(p, dict) else (lambda k, d=None: getattr(p, k, d))
    peer = str(get("peer") or "?")
    if name in ("peer:join", "peer:leave", "peer:seen", "peer:lost"):
        return logging.DEBUG, f"{name.replace(':', ' ')}: {peer} ({get('type') or '-'}) in {get('room') or '?'}"
    if name in ("sync:served", "sync:applied", "sync:failed"):
        counts = {k: v for k, v in (p.items() if isinstance(p, dict) else []) if k not in ("peer", "room", "type") and isinstance(v, (int, float, str))}
        detail = " ".join(f"{k}={v}" for k, v in counts.items())
        return logging.DEBUG, f"{name.replace(':', ' ')} {peer}" + (f": {detail}" if detail else "")
    if name == "relay:up":
        return logging.INFO, f"relay up: {get('url') or get('relay') or p}"
    if name == "relay:down":
        return logging.DEBUG, f"relay down: {get('url') or get('relay') or p}"
    if name == "change":
        kind = getattr(p, "kind", "write")
        changes = getattr(p, "changes", [])
        origin = getattr(p, "origin", "?")
        if origin == "local" and (kind == "clear" or len(changes) > 50):  # remote merges: gdbnb.node logs them
            return logging.INFO, f"{kind}: {len(changes)} node change(s) from {origin}"
        return logging.DEBUG, f"{len(changes)} change(s) from {origin}"
    return None


def _install_event_log(db: Any) -> Any:
    """One readable line per state change; transient network noise at debug level only."""
    def on_any(name: str, payload: Any) -> None:
        out = _describe(name, payload)
        if out is not None:
            log.log(out[0], "%s", out[1])

    return db.events.on_any(on_any)


async def run(c: Config) -> int:
    """Run the node until SIGINT/SIGTERM; the process exit code."""
    import gdbnb

    options: dict[str, Any] = {}
    if c.oplog_size is not None:
        options["oplog_size"] = c.oplog_size
    try:
        db = await gdbnb.open(c.room, path=c.db_path or None, **options)
    except StoreError as e:
        print(f"gdbnb: error: {e}", file=sys.stderr)
        return 1
    try:
        if c.import_path:
            await _import(db, c.import_path)
        if c.export_dir:
            await _export(db, c.export_dir)
            return 0
        return await _serve(db, c)
    finally:
        try:
            await asyncio.wait_for(db.close(), SHUTDOWN_TIMEOUT)
        except asyncio.TimeoutError:
            log.error("leaving the room and flushing took more than %.0f s", SHUTDOWN_TIMEOUT)
            raise SystemExit(1) from None


async def _serve(db: Any, c: Config) -> int:
    """HTTP server, then the network; wait for a signal; stop both (the caller closes ``db``)."""
    from .web.auth import TokenAuth, generate_token, is_loopback_host
    from .web.context import GdbWebContext
    from .web.server import WebServer, format_host, make_app

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signame: str) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second %s: exiting now, without flushing", signame)
            os._exit(1)
        log.info("%s received: leaving the room and flushing the store", signame)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(on_signal, "signal"))

    token = c.token or generate_token()
    loopback = is_loopback_host(c.host)
    relay_hub = None
    if c.relay and c.rtc:
        from .net.relay_server import RelayHub

        relay_hub = RelayHub(name="gdbnb embedded relay")
    context = GdbWebContext(auth=TokenAuth(token, protect_reads=not loopback))
    context.add_room(db, default=True)
    server = WebServer(make_app(context, relay=relay_hub), c.host, c.port)
    try:
        await server.start()
    except OSError as e:
        print(f"gdbnb: error: cannot listen on {c.host}:{c.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    unsubscribe_log = _install_event_log(db)
    own_relay = f"ws://127.0.0.1:{server.port}" if relay_hub is not None else None
    public_relay = f"ws://{format_host(c.host)}:{server.port}" if relay_hub is not None else None
    if public_relay:
        context.info["relay_url"] = public_relay
    try:
        if c.rtc:
            try:
                await db.start_network(**_rtc_options(c, own_relay))
            except ImportError as e:  # an install without the WebRTC stack
                print(f"gdbnb: error: the network layer cannot load ({e}); run with --no-rtc", file=sys.stderr)
                return 1
        stats = db.stats()
        page = f"{server.url}/gdb/"
        peer_id = getattr(db.network, "peer_id", None)
        log.info("ready: room %r, %d node(s), store %s", db.room, stats["nodes"], stats["store"] or "memory")
        lines = [
            f"gdbnb: room {db.room!r} ready" + (f", peer id {peer_id}" if peer_id else ", network off (--no-rtc)"),
            f"  status page: {page}?token={token}" if not loopback else f"  status page: {page}",
        ]
        if public_relay:
            lines.append(f"  relay URL for GenosDB apps (rtc.relayUrls): {public_relay}")
        lines.append(f"  API token (writes{'' if loopback else ' and reads'}): {token}")
        print("\n".join(lines), flush=True)
        await stop.wait()
    finally:
        unsubscribe_log()
        context.close()
        await server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    c = resolve_config(args)
    setup_logging(c.log_level)
    try:
        return asyncio.run(run(c))
    except GdbnbError as e:
        print(f"gdbnb: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - a signal before the handlers were installed
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
