"""Codecs: erasure coding and chunk/stripe/range arithmetic (pure)."""
