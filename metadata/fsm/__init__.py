"""Catalog state machine (pure)."""
