"""widgets layer (see docs/ARCHITECTURE.md)."""
