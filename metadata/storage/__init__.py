"""Durable storage for the metadata node: log, hard state, snapshots."""
