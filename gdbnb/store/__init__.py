"""Durable storage: the SQLite store of a room and the original genosdb-server files."""

from .paths import default_data_dir, default_store_path, room_file_stem
from .sqlite import Snapshot, SQLiteStore

__all__ = ["SQLiteStore", "Snapshot", "default_data_dir", "default_store_path", "room_file_stem"]
