"""metadata role."""

__all__: list[str] = []
