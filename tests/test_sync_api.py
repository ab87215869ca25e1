"""The blocking facade: same results as the async API, usable from inside a running loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

import gdbnb
from gdbnb.errors import ClosedError, ValidationError


def test_blocking_api_roundtrip(tmp_path):
    with gdbnb.connect("s", path=tmp_path / "s.sqlite") as db:
        a = db.put({"name": "a"})
        b = db.put({"name": "b"}, "b")
        assert db.link(a, b) is True
        assert db.get(a)["edges"] == ["b"]
        assert [r["id"] for r in db.map({"name": "b"})["results"]] == ["b"]
        with pytest.raises(ValidationError):
            db.put({"bad": {1, 2}})
        assert db.remove(b) is True
    with pytest.raises(ClosedError):
        db.put({})


def test_realtime_callback_runs_on_the_background_loop(tmp_path):
    got = threading.Event()
    seen = []

    def cb(ev):
        seen.append((ev["action"], threading.current_thread().name))
        if ev["action"] == "added":
            got.set()

    with gdbnb.connect("s2", path=tmp_path / "s2.sqlite") as db:
        res = db.map({"k": 1}, callback=cb)
        db.put({"k": 1}, "x")
        assert got.wait(5)
        res["unsubscribe"]()
    assert seen[0][0] == "added" and seen[0][1].startswith("gdbnb-")


def test_works_inside_a_running_event_loop(tmp_path):
    """What a Jupyter kernel looks like: a loop is already running in this thread."""

    async def inside():
        db = gdbnb.connect("s3", path=tmp_path / "s3.sqlite")
        try:
            nid = db.put({"from": "kernel"})
            return db.get(nid)["value"]
        finally:
            db.close()

    assert asyncio.run(inside()) == {"from": "kernel"}
