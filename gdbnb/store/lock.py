"""Exclusive ownership of a store file, across processes.

An advisory ``flock`` on ``<store>.lock``, held for the life of the store. The kernel drops it
when the process dies (even by ``kill -9``), so a stale lock file never blocks a restart. The
lock file holds the owner's pid, only to make the error message useful. ``flock`` locks belong
to an open file description, so a second open of the same store inside one process is refused
too.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StoreError, StoreLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock"]


class StoreLock:
    """Held from construction until :meth:`release`."""

    __slots__ = ("path", "_fd")

    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot create lock file {self.path}: {e}") from e
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise StoreLockedError(f"store {store_path} is already open in {who} (lock file {self.path})") from None
        # Ours now: record our pid for the next one who tries.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Idempotent. The lock file stays (unlinking it would race with a new owner)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
