"""web layer (see docs/ARCHITECTURE.md)."""
