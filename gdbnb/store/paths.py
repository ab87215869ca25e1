"""Where stores live by default, and how a room name becomes a file name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = ["default_data_dir", "default_store_path", "room_file_stem", "room_from_file_stem"]

# Longest stem kept reversible; longer ones are cut and suffixed with a hash (file names are
# limited to 255 bytes on most file systems, and we add suffixes such as ".sqlite-wal").
_MAX_STEM = 180


def default_data_dir() -> Path:
    """``$GDB_DATA_DIR``, else ``$XDG_DATA_HOME/gdbnb``, else ``~/.local/share/gdbnb``."""
    explicit = os.environ.get("GDB_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser() / "gdbnb"
    return Path.home() / ".local" / "share" / "gdbnb"


def room_file_stem(room: str) -> str:
    """A file-name-safe form of ``room``; identical to ``room`` when it is plain ASCII.

    Every character outside ``[A-Za-z0-9_.~-]`` (and a leading dot) is percent-encoded as
    UTF-8, so ``/``, ``\\``, control characters and any Unicode are safe and the mapping is
    reversible (:func:`room_from_file_stem`). Very long names are cut and get a SHA-256 suffix
    (no longer reversible, still unique). On case-insensitive file systems ``Room`` and
    ``room`` share a file: the store records its room and refuses the other one, so this
    shows as a clear error, never as mixed data.
    """
    if not isinstance(room, str) or room == "":
        raise ValueError(f"room must be a non-empty string, not {room!r}")
    stem = quote(room, safe="-_.~", encoding="utf-8", errors="surrogatepass")
    if stem.startswith("."):
        stem = "%2E" + stem[1:]
    if len(stem) > _MAX_STEM:
        digest = hashlib.sha256(room.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        stem = stem[: _MAX_STEM - 33].rstrip("%0123456789ABCDEF") + "~" + digest
    return stem


def room_from_file_stem(stem: str) -> str:
    """Inverse of :func:`room_file_stem` (for stems that were not shortened)."""
    return unquote(stem, encoding="utf-8", errors="surrogatepass")


def default_store_path(room: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data_dir>/<room_file_stem(room)>.sqlite``."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    return base / f"{room_file_stem(room)}.sqlite"
