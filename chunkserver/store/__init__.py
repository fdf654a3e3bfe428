"""Shard stores."""
