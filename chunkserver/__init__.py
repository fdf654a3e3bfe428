"""chunkserver role."""

__all__: list[str] = []
