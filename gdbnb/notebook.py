"""Everything a notebook needs from gdbnb, in one import.

``from gdbnb.notebook import RoomView, GraphView, QueryView, to_dataframe, db_to_dataframe,
to_networkx, history, ChangeLog, import_nodes, jupyter_relay_url``.

A kernel's database is its own peer of the room. When the Jupyter server runs the gdbnb
extension, the server holds another, persistent peer of the same room (it keeps the data when
kernels stop) and mounts its embedded Nostr relay at ``<base_url>/gdb/relay``; point a kernel at
it with ``gdbnb.connect(room, rtc=True, relay_urls=[jupyter_relay_url()])`` and the two meet
over loopback without any public relay.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .errors import GdbnbError
from .extras import ChangeLog, db_to_dataframe, history, import_nodes, to_dataframe, to_networkx

__all__ = [
    "RoomView",
    "GraphView",
    "QueryView",
    "to_dataframe",
    "db_to_dataframe",
    "to_networkx",
    "history",
    "ChangeLog",
    "import_nodes",
    "jupyter_relay_url",
    "RELAY_PATH",
]

#: where the server extension mounts the embedded relay, under the server's base_url
RELAY_PATH = "gdb/relay"


def __getattr__(name: str) -> Any:  # the widgets need anywidget: import them on first use
    if name in ("RoomView", "GraphView", "QueryView"):
        return getattr(import_module(".widgets", __package__), name)
    raise AttributeError(f"module 'gdbnb.notebook' has no attribute {name!r}")


def _pick_server(servers: list[dict[str, Any]]) -> dict[str, Any]:
    """The server this kernel most likely belongs to: the one whose root holds the cwd, else the newest."""
    cwd = Path.cwd().resolve()
    best: dict[str, Any] | None = None
    best_depth = -1
    for info in servers:
        root = info.get("root_dir") or info.get("notebook_dir")
        if not root:
            continue
        root_path = Path(root).expanduser().resolve()
        if cwd != root_path and root_path not in cwd.parents:
            continue
        if len(root_path.parts) > best_depth:
            best, best_depth = info, len(root_path.parts)
    return best or servers[-1]


def jupyter_relay_url(server: dict[str, Any] | str | None = None, *, token: bool = True) -> str:
    """The WebSocket URL of the Jupyter server's embedded relay (``ws[s]://host:port/<base_url>gdb/relay``).

    ``server``: a server info dict (as ``jupyter_server.serverapp.list_running_servers()`` gives),
    the server's URL, or None to find the running server this kernel belongs to. With ``token``,
    the server's token is added as ``?token=…`` (the relay sits behind the server's auth).
    Raises GdbnbError when no running server is found.
    """
    if isinstance(server, str):
        info: dict[str, Any] = {"url": server, "token": ""}
    elif isinstance(server, dict):
        info = server
    else:
        try:
            from jupyter_server.serverapp import list_running_servers
        except ImportError as e:
            raise ImportError("jupyter_relay_url() needs jupyter-server: pip install 'gdbnb[jupyter]'") from e
        servers = list(list_running_servers())
        if not servers:
            raise GdbnbError("no running Jupyter server found (is this kernel started by jupyter lab/notebook?)")
        info = _pick_server(servers)
    url = info.get("url") or f"http://{info.get('hostname', '127.0.0.1')}:{info['port']}{info.get('base_url', '/')}"
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    host = parts.netloc
    if parts.hostname in ("0.0.0.0", "::", ""):
        host = host.replace(parts.hostname or "", "127.0.0.1", 1) if parts.hostname else f"127.0.0.1{host}"
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    tok = info.get("token") or ""
    query = urlencode({"token": tok}) if token and tok else ""
    return urlunsplit((scheme, host, base + RELAY_PATH, query, ""))
