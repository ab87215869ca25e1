"""The status page in headless Chromium: loads, escapes values, updates live."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

import gdbnb

from .cdp import CHROMIUM, Browser
from .conftest import TOKEN, serve

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
XSS = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = await Browser().start()
    try:
        yield b
    finally:
        await b.close()


async def test_status_page_loads_escapes_and_updates_live(browser):
    async with gdbnb.open("browserroom", path=False) as db:
        await db.put({"html": XSS}, "evil")
        await db.put({"name": "Ana"}, "ana")
        s = await serve(db)
        try:
            await browser.goto(f"{s.base}/gdb/?token={TOKEN}")
            await browser.wait_js("document.getElementById('room').textContent === 'browserroom'")
            assert await browser.js("document.getElementById('nodes-count').textContent") == "2"
            await browser.wait_js("document.getElementById('live').textContent === 'live'")
            # the token left the address bar
            assert "token" not in await browser.js("location.href")
            # look a node up by id: the value shows as text, nothing runs
            await browser.js(
                "document.getElementById('get-id').value='evil';"
                "document.getElementById('get-form').requestSubmit()")
            await browser.wait_js("document.getElementById('lookup-results').textContent.includes('<script>')")
            assert await browser.js("window.__pwned") is None
            assert await browser.js("document.querySelectorAll('#lookup-results script, #lookup-results img').length") == 0
            # live: a node added on the server appears without reload, as text
            await db.put({"html": XSS, "n": 2}, "live-node")
            await browser.wait_js("document.getElementById('activity').textContent.includes('live-node')")
            await browser.wait_js("document.getElementById('nodes-count').textContent === '3'")
            assert "onerror" in await browser.js("document.getElementById('activity').textContent")
            assert await browser.js("window.__pwned") is None
            # map query from the form
            await browser.js(
                "document.getElementById('map-query').value = JSON.stringify({name: 'Ana'});"
                "document.getElementById('map-form').requestSubmit()")
            await browser.wait_js("document.getElementById('lookup-results').textContent.includes('1 result')")
            await browser.screenshot(ARTIFACTS / "status-page.png")
            assert not [c for c in browser.console if c.startswith("EXCEPTION")], browser.console
        finally:
            s.context.close()
            await s.server.stop()


async def test_peer_join_and_leave_show_live(browser):
    from gdbnb.net.relay_server import RelayServer

    async with RelayServer() as relay:
        opts = {"relay_urls": [relay.url], "loopback": True}
        async with gdbnb.open("peers", path=False, rtc=True, **opts) as a:
            s = await serve(a)
            try:
                await browser.goto(f"{s.base}/gdb/")
                await browser.wait_js("document.getElementById('live').textContent === 'live'")
                b = await gdbnb.open("peers", path=False, rtc=True, **opts)
                peer_b = b.network.peer_id
                await browser.wait_js(
                    f"document.querySelector('#peers tbody tr[data-peer=\"{peer_b}\"]') !== null", timeout=30)
                assert "superpeer" in await browser.js("document.querySelector('#peers tbody').textContent")
                await browser.screenshot(ARTIFACTS / "status-page-peer.png")
                await b.close()
                await browser.wait_js(
                    f"document.querySelector('#peers tbody tr[data-peer=\"{peer_b}\"]') === null", timeout=20)
                assert "peer leave" in await browser.js("document.getElementById('activity').textContent")
            finally:
                s.context.close()
                await s.server.stop()
