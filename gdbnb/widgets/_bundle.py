"""The widgets' front-end code, read from ``static/`` (all vendored: nothing is fetched at run time).

anywidget hands ``_esm`` to the front end as one module, so relative imports cannot be
resolved there; a vendored library shipped as a UMD bundle (force-graph) is inlined in front of
the widget's module, evaluated with a local ``module``/``exports`` pair so it defines a local
binding instead of a global.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["STATIC", "esm", "css"]

STATIC = Path(__file__).with_name("static")


def _umd_as_local(name: str, source: str) -> str:
    return (
        f"const {name} = (function () {{\n"
        "  const module = { exports: {} }; const exports = module.exports; const define = undefined;\n"
        f"{source}\n"
        "  return module.exports;\n"
        "}).call(undefined);\n"
    )


@lru_cache(maxsize=None)
def esm(filename: str, **vendor: str) -> str:
    """``static/<filename>``, preceded by each ``vendor`` UMD file bound to its keyword name."""
    parts = [_umd_as_local(binding, (STATIC / umd).read_text("utf-8")) for binding, umd in vendor.items()]
    parts.append((STATIC / filename).read_text("utf-8"))
    return "\n".join(parts)


@lru_cache(maxsize=None)
def css(filename: str) -> str:
    return (STATIC / filename).read_text("utf-8")
