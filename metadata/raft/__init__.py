"""Raft consensus core (pure)."""
