"""gdbnb.extras / gdbnb.notebook: DataFrames, networkx, oplog history, ChangeLog, imports, relay URL."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import pytest

import gdbnb
from gdbnb import notebook
from gdbnb.errors import GdbnbError

pd = pytest.importorskip("pandas")
nx = pytest.importorskip("networkx")


def _people(db: gdbnb.SyncDatabase) -> None:
    db.put({"name": "Ada", "age": 36, "address": {"city": "London"}}, "ada")
    db.put({"name": "Alan", "age": 41}, "alan")
    db.put({"name": "Grace", "age": 85}, "grace")
    db.link("ada", "alan")
    db.link("alan", "grace")


def test_to_dataframe_from_map_results(sdb: gdbnb.SyncDatabase) -> None:
    _people(sdb)
    df = notebook.to_dataframe(sdb.map({"age": {"$gt": 40}}, field="age", order="desc"))
    assert list(df.index) == ["grace", "alan"]
    assert df.loc["alan", "name"] == "Alan" and df.loc["alan", "_edges"] == ["grace"]
    assert str(df["_updated"].dtype).startswith("datetime64") and df["_updated"].dt.tz is not None
    full = notebook.db_to_dataframe(sdb)
    assert full.loc["ada", "address.city"] == "London"
    assert len(notebook.db_to_dataframe(sdb, {"name": {"$like": "A%"}})) == 2
    scalars = notebook.to_dataframe([{"id": "x", "value": 3, "edges": [], "timestamp": {"physical": 1, "logical": 0}}])
    assert scalars.loc["x", "value"] == 3


def test_to_networkx(sdb: gdbnb.SyncDatabase) -> None:
    _people(sdb)
    g = notebook.to_networkx(sdb)
    assert isinstance(g, nx.DiGraph)
    assert set(g.edges) == {("ada", "alan"), ("alan", "grace")}
    assert g.nodes["ada"]["name"] == "Ada"
    assert nx.shortest_path(g, "ada", "grace") == ["ada", "alan", "grace"]
    sub = notebook.to_networkx(sdb, {"age": {"$lt": 50}})
    assert set(sub.nodes) == {"ada", "alan"} and set(sub.edges) == {("ada", "alan")}


def test_history_and_changelog(sdb: gdbnb.SyncDatabase) -> None:
    log = notebook.ChangeLog(sdb)
    _people(sdb)
    sdb.remove("grace")
    h = notebook.history(sdb)
    assert list(h["type"]) == ["upsert"] * 3 + ["link", "link", "remove"]
    assert list(h["id"]) == ["ada", "alan", "grace", "ada", "alan", "grace"]
    assert h.loc[3, "target"] == "alan" and h.loc[0, "value"]["name"] == "Ada"
    assert h["physical"].is_monotonic_increasing
    df = log.to_dataframe()
    assert list(df["action"][:3]) == ["added"] * 3
    assert ("removed", "grace") in set(zip(df["action"], df["id"]))
    assert set(df["origin"]) == {"local"}
    log.stop()
    sdb.put({"n": 1}, "after")
    assert "after" not in set(log.to_dataframe()["id"])


def test_import_nodes_sync_with_dataframe_and_progress(sdb: gdbnb.SyncDatabase, capsys: Any) -> None:
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(1200)], "n": range(1200), "opt": [None, 1.5] * 600})
    ids = notebook.import_nodes(sdb, frame, chunk_size=500, progress=True)
    assert ids[:2] == ["r0", "r1"] and len(ids) == 1200
    assert sdb.get("r0")["value"] == {"n": 0, "opt": None}
    assert sdb.get("r1")["value"] == {"n": 1, "opt": 1.5}
    assert "1200/1200" in capsys.readouterr().err  # tqdm's bar (text mode outside a notebook)
    fresh = notebook.import_nodes(sdb, [{"x": 1}, ("given", {"y": 2}), "plain"], progress=False)
    assert fresh[1] == "given" and sdb.get(fresh[2])["value"] == "plain"


async def test_import_nodes_async_and_reads() -> None:
    async with gdbnb.open("extras-async", path=False) as db:
        ids = await notebook.import_nodes(db, [{"id": f"a{i}", "i": i} for i in range(50)], progress=False)
        assert len(ids) == 50
        await db.link("a0", "a1")
        assert len(notebook.db_to_dataframe(db, {"i": {"$lt": 10}})) == 10
        assert notebook.to_networkx(db).number_of_edges() == 1
        assert len(notebook.history(db)) == 51
        await asyncio.sleep(0)


def test_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "networkx", None)  # makes ``import networkx`` fail
    with pytest.raises(ImportError, match=r"pip install 'gdbnb\[data\]'"):
        notebook.to_networkx(object())


def test_jupyter_relay_url() -> None:
    assert notebook.jupyter_relay_url({"url": "http://localhost:8888/", "token": "t0k"}) == "ws://localhost:8888/gdb/relay?token=t0k"
    assert notebook.jupyter_relay_url({"url": "https://hub.example/user/me/", "token": "x"}, token=False) == \
        "wss://hub.example/user/me/gdb/relay"
    assert notebook.jupyter_relay_url("http://0.0.0.0:9999/base") == "ws://127.0.0.1:9999/base/gdb/relay"


def test_jupyter_relay_url_picks_the_running_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    serverapp = types.ModuleType("jupyter_server.serverapp")  # the real one takes seconds to import
    monkeypatch.setitem(sys.modules, "jupyter_server.serverapp", serverapp)
    monkeypatch.chdir(tmp_path)
    servers = [{"url": "http://127.0.0.1:1/", "token": "a", "root_dir": "/nonexistent"},
               {"url": "http://127.0.0.1:2/", "token": "b", "root_dir": str(tmp_path)}]
    serverapp.list_running_servers = lambda *a, **k: iter(servers)  # type: ignore[attr-defined]
    assert notebook.jupyter_relay_url() == "ws://127.0.0.1:2/gdb/relay?token=b"
    serverapp.list_running_servers = lambda *a, **k: iter([])  # type: ignore[attr-defined]
    with pytest.raises(GdbnbError, match="no running Jupyter server"):
        notebook.jupyter_relay_url()
