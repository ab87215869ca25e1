"""The web layer: status page, SSE stream and JSON API, written once and mounted twice.

* ``handlers.make_handlers(base_url, context, handler_base=None)``: the Tornado rules;
* ``context.GdbWebContext``: rooms (Databases), their SSE hubs, and the auth hook;
* ``auth``: ``TokenAuth`` (standalone server), ``JupyterAuth`` (Jupyter mount), ``AllowAll``;
* ``server``: the standalone app of ``python -m gdbnb`` (adds ``/``: relay and redirect).
"""

from .auth import AllowAll, AuthPolicy, JupyterAuth, TokenAuth, generate_token, is_loopback_host
from .context import GdbWebContext
from .handlers import STATIC_DIR, GdbHandler, make_handlers
from .hub import EventHub, SseEvent

__all__ = [
    "AllowAll",
    "AuthPolicy",
    "JupyterAuth",
    "TokenAuth",
    "generate_token",
    "is_loopback_host",
    "GdbWebContext",
    "GdbHandler",
    "make_handlers",
    "STATIC_DIR",
    "EventHub",
    "SseEvent",
]
