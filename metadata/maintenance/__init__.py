"""Cluster self-maintenance on the metadata leader: failure detection, repair, drain.

Pure cores (``detector``, ``health``, ``planner``: no asyncio, I/O, time or global random)
decide from the catalog what to do; ``driver`` is the asyncio shell that runs them on the
Raft leader only, talks to chunkservers and proposes the resulting catalog commands.
"""

__all__: list[str] = []
