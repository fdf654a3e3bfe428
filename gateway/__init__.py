"""gateway role."""

__all__: list[str] = []
