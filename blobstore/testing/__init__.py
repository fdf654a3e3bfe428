"""Test-support library shared by every test tier (histories, linearizability, fault tools).

- ``blobstore.testing.history``: the ``Operation`` record, its JSON-lines file format, a
  thread- and asyncio-safe ``HistoryRecorder``, and ``write_if_requested`` (dump a run's
  history to ``$BLOBSTORE_HISTORY_DIR`` so an independent checker can re-check it).
- ``blobstore.testing.linearizability``: ``check(ops)``, a Wing & Gong / Lowe search with
  memoization, per-key partitioned, over a key-value register model; also a CLI
  (``python -m blobstore.testing.linearizability FILE.jsonl``).
- ``blobstore.testing.virtual_loop``: an asyncio event loop on virtual time (timers jump,
  ``to_thread`` runs inline, deadlocks and busy waits raise) and a ``SimClock`` that follows
  it, for deterministic simulations of async components.

Import the submodules directly. This package deliberately re-exports nothing: importing
``linearizability`` here would make ``python -m blobstore.testing.linearizability`` warn
that the module was already imported. Production code must not import this package.
"""

from __future__ import annotations

__all__: list[str] = []
