from __future__ import annotations

from typing import Any, Iterator

import pytest

pytest.importorskip("anywidget")

import gdbnb  # noqa: E402


class FrontEnd:
    """What a GraphView front end holds after the messages it received (snapshot + deltas)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.nodes: dict[str, dict[str, Any]] = {}

    def __call__(self, content: dict[str, Any], buffers: Any = None) -> None:
        self.messages.append(content)
        if content["type"] == "snapshot":
            self.nodes = {n["id"]: n for n in content["nodes"]}
        elif content["type"] == "delta":
            for i in content["remove"]:
                self.nodes.pop(i, None)
            for n in content["upsert"]:
                self.nodes[n["id"]] = n

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]


def attach(widget: Any) -> FrontEnd:
    """Record what ``widget`` sends, then ask for the snapshot like a rendered view does."""
    fe = FrontEnd()
    widget.send = fe
    widget._on_msg(widget, {"type": "ready"}, [])
    widget.flush()  # runs on the loop after the snapshot was sent
    return fe


@pytest.fixture
def sdb() -> Iterator[gdbnb.SyncDatabase]:
    db = gdbnb.connect("widgets-test", path=False)
    yield db
    db.close()
