"""``make_handlers`` under another base URL and base class: how the Jupyter extension mounts it."""

from __future__ import annotations

from typing import Any

from tornado.web import Application, RequestHandler

import gdbnb
from gdbnb.web.auth import JupyterAuth
from gdbnb.web.context import GdbWebContext
from gdbnb.web.handlers import make_handlers
from gdbnb.web.server import WebServer

from .conftest import Served, SSEClient, wait_for


class FakeJupyterBase(RequestHandler):
    """Stands for JupyterHandler: its async prepare authenticates; it has an authorizer."""

    prepared = 0

    async def prepare(self) -> None:  # type: ignore[override]
        FakeJupyterBase.prepared += 1
        user = self.request.headers.get("X-User")
        self.current_user = {"name": user} if user else None

    @property
    def authorizer(self) -> Any:
        class Authorizer:
            def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
                assert resource == "gdbnb"
                return user["name"] == "admin" or action == "read"

        return Authorizer()


async def test_mounted_under_a_base_url_with_a_jupyter_like_base():
    async with gdbnb.open("mounted", path=False) as db:
        context = GdbWebContext(auth=JupyterAuth())
        context.add_room(db)
        rules = make_handlers("/user/ana/", context, handler_base=FakeJupyterBase)
        assert all(pattern.startswith("/user/ana/gdb") for pattern, *_ in rules)
        server = WebServer(Application(rules), "127.0.0.1", 0)
        await server.start()
        s = Served(db, context, server)
        try:
            code, body, _ = await s.fetch("/user/ana/gdb/api/status")
            assert code == 403 and "error" in body  # no user: JupyterAuth refuses
            assert FakeJupyterBase.prepared >= 1  # the base's prepare ran first
            code, body, _ = await s.fetch("/user/ana/gdb/api/status", headers={"X-User": "guest"})
            assert code == 200 and body["room"] == "mounted"
            code, body, _ = await s.fetch("/user/ana/gdb/api/nodes", "POST", {"value": 1}, headers={"X-User": "guest"})
            assert code == 403
            code, body, _ = await s.fetch("/user/ana/gdb/api/nodes", "POST", {"value": 1, "id": "k"},
                                          headers={"X-User": "admin"})
            assert code == 201
            code, text, _ = await s.fetch("/user/ana/gdb/", headers={"X-User": "guest"})
            assert code == 200 and "static/app.js" in text
            c = await SSEClient.connect(server.port, path="/user/ana/gdb/events", extra={"X-User": "guest"})
            await wait_for(lambda: context.hub().clients == 1)
            await db.put(2, "k2")
            assert (await c.events(1))[0]["data"]["id"] == "k2"
            c.close()
        finally:
            context.close()
            await server.stop()
