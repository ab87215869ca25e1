"""pytest-jupyter fixtures for the extension tests (a real ServerApp in the test's loop).

pytest-jupyter drives its server from ``jp_asyncio_loop`` with ``run_until_complete`` while
pytest-asyncio runs the tests in a loop of its own; serving from one loop and fetching from the
other hangs. Here ``jp_asyncio_loop`` *is* the test's loop: the sync fixtures still run it
between steps (it is not running then), the tests await on it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

import pytest



@pytest.fixture
async def jp_asyncio_loop() -> AsyncIterator[asyncio.AbstractEventLoop]:
    yield asyncio.get_running_loop()  # owned (and closed) by pytest-asyncio


@pytest.fixture
def gdb_config() -> dict[str, Any]:
    """``GdbnbExtension`` traits of a test; tests update it before asking for the server."""
    return {"rooms": ["alpha"], "relay_urls": [], "stop_on_sigint": False}


@pytest.fixture
def jp_server_config(gdb_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    gdb_config.setdefault("data_dir", str(tmp_path / "gdbdata"))
    return {
        "ServerApp": {"jpserver_extensions": {"gdbnb.jupyter": True}},
        "GdbnbExtension": gdb_config,
    }


@pytest.fixture
async def gdb_app(jp_serverapp: Any) -> Any:
    """The started extension (pytest-jupyter never runs the server's ``_post_start``)."""
    await jp_serverapp.extension_manager.start_all_extensions()
    app = jp_serverapp.extension_manager.extension_apps["gdbnb.jupyter"]
    ext = next(iter(app))
    if ext._start_task is not None:
        await ext._start_task
    return ext
