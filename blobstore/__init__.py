"""blobstore: shared core (types, errors, config, codecs, RPC, client, CLI)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
