"""Where the captured protocol vectors are: ``../shared/spec/vectors`` beside the repository
(CI lays a copy of shared/ there), or under ``$GDBNB_SHARED_DIR``."""

from __future__ import annotations

import os
from pathlib import Path


def vectors_dir(kind: str) -> Path | None:
    """``.../spec/vectors/<kind>`` (``sync`` or ``signaling``), or None when absent."""
    bases = [Path(os.environ["GDBNB_SHARED_DIR"])] if os.environ.get("GDBNB_SHARED_DIR") else []
    bases.append(Path(__file__).resolve().parents[1].parent / "shared")
    for base in bases:
        d = base / "spec" / "vectors" / kind
        if d.is_dir():
            return d
    return None
