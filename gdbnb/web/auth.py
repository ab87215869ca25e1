"""Who may read and who may write: the auth hook of the web layer.

The handlers never decide by themselves. Each request calls
``await context.auth.authorize(handler, action)`` with ``action`` ``"read"`` or ``"write"``;
the policy returns to allow it or raises ``tornado.web.HTTPError`` (401/403) to refuse it.

* The standalone server (``python -m gdbnb``) uses :class:`TokenAuth`: writes always need the
  token; reads need it too unless the server is bound to a loopback address.
* The Jupyter mount uses :class:`JupyterAuth` (or its own policy): the Jupyter server's identity
  provider has already set ``handler.current_user`` in ``prepare`` and its authorizer decides,
  which is what ``@web.authenticated`` + ``@authorized`` do.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import secrets
from http.client import responses
from typing import Any, Awaitable, Protocol

from tornado.web import HTTPError, RequestHandler

__all__ = [
    "AuthPolicy",
    "AllowAll",
    "TokenAuth",
    "JupyterAuth",
    "ACTIONS",
    "generate_token",
    "is_loopback_host",
    "request_token",
    "http_error",
]

ACTIONS = ("read", "write")


def http_error(status: int, message: str) -> HTTPError:
    """An ``HTTPError`` whose message is safe to log and to show as ``{"error": message}``."""
    return HTTPError(status, "%s", message, reason=responses.get(status, "Error"))


class AuthPolicy(Protocol):
    """The auth hook: allow (return) or refuse (raise ``HTTPError``) one request."""

    def authorize(self, handler: RequestHandler, action: str) -> Awaitable[None] | None: ...


class AllowAll:
    """No checks at all: for tests and for embedding behind an auth that already ran."""

    def authorize(self, handler: RequestHandler, action: str) -> None:
        return None


def generate_token() -> str:
    """A fresh URL-safe token (48 hex characters, like Jupyter's)."""
    return secrets.token_hex(24)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``::1``; False for ``0.0.0.0``, ``::`` and names."""
    h = host.strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def request_token(handler: RequestHandler) -> str | None:
    """The token a request carries: ``Authorization: token X`` / ``Bearer X``, or ``?token=X``."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    query = handler.get_query_argument("token", None)
    return query or None


def _host_name(host_header: str) -> str:
    """``Host`` header without its port (``[::1]:8080`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


class TokenAuth:
    """Token policy of the standalone server.

    ``protect_reads=False`` (loopback binding): reads are open, but only when the ``Host``
    header names a loopback host, so a web page that rebinds its DNS name to 127.0.0.1 cannot
    read the graph (the same check as Jupyter's ``allow_remote_access=False``).
    """

    def __init__(self, token: str, *, protect_reads: bool) -> None:
        if not token:
            raise ValueError("TokenAuth needs a non-empty token")
        self.token = token
        self.protect_reads = protect_reads

    def check_token(self, supplied: str | None) -> bool:
        return supplied is not None and hmac.compare_digest(supplied.encode(), self.token.encode())

    def authorize(self, handler: RequestHandler, action: str) -> None:
        if self.check_token(request_token(handler)):
            return
        if action == "read" and not self.protect_reads:
            if is_loopback_host(_host_name(handler.request.host or "")):
                return
            raise http_error(403, "a non-loopback Host needs the token")
        supplied = request_token(handler)
        what = "writes need" if action == "write" else "this server needs"
        if supplied is None:
            raise http_error(401, f"{what} a token (Authorization: token …, or ?token=)")
        raise http_error(403, "invalid token")


class JupyterAuth:
    """Jupyter's auth, for handlers mounted in a Jupyter server (duck-typed: no import of it).

    Equivalent to decorating each method with ``@web.authenticated`` and
    ``@authorized(action, resource)``: the handler must derive from ``JupyterHandler`` (pass it
    as ``handler_base`` to ``make_handlers``) so that its ``prepare`` has set ``current_user``
    and ``authorizer``.
    """

    def __init__(self, resource: str = "gdbnb") -> None:
        self.resource = resource

    async def authorize(self, handler: RequestHandler, action: str) -> None:
        user: Any = handler.current_user
        if not user:
            raise http_error(403, "not authenticated")
        authorizer = getattr(handler, "authorizer", None)
        if authorizer is None:
            raise http_error(403, "no authorizer")
        ok = authorizer.is_authorized(handler, user, action, self.resource)
        if inspect.isawaitable(ok):
            ok = await ok
        if not ok:
            raise http_error(403, f"not authorized to {action} {self.resource}")
