"""The Jupyter server extension: GenosDB rooms kept by ``jupyter server`` / ``jupyter lab``.

Enabled by ``etc/jupyter/jupyter_server_config.d/gdbnb.json`` (shipped with the package):
``{"ServerApp": {"jpserver_extensions": {"gdbnb.jupyter": true}}}``. Configure it with
``c.GdbnbExtension.rooms = ["myroom"]`` in ``jupyter_server_config.py`` or
``--GdbnbExtension.rooms=myroom``; see ``docs/jupyter.md``.

* ``app``: ``GdbnbExtension`` (traitlets, lifecycle);
* ``rooms``: ``RoomManager`` (open / join / leave / close rooms; no Jupyter import);
* ``handlers``: what only the Jupyter mount has (join/leave API, the relay endpoint).
"""

from __future__ import annotations

from typing import Any

from .. import __version__

__all__ = ["GdbnbExtension", "_jupyter_server_extension_points", "__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import GdbnbExtension

    return [{"module": "gdbnb.jupyter", "app": GdbnbExtension}]


def __getattr__(name: str) -> Any:
    # lazy: ``import gdbnb.jupyter.rooms`` must not need jupyter_server
    if name == "GdbnbExtension":
        from .app import GdbnbExtension

        return GdbnbExtension
    raise AttributeError(name)
