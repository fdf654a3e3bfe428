"""Raft consensus core (pure). Entry point: ``metadata.raft.rawnode.RawNode``.

Deliberately imports nothing: ``metadata.storage`` imports ``metadata.raft.messages``, and
the core imports the storage protocol, so an eager import here would be circular.
"""

__all__: list[str] = []
