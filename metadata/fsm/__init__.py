"""Catalog state machine (pure): commands, records, apply, queries, listing, snapshots.

Entry points: ``metadata.fsm.state.Catalog`` (typed apply, queries, snapshots) and
``metadata.fsm.machine.CatalogStateMachine`` (what ``metadata.node`` drives).
Modules: ``commands`` (what may be proposed), ``records`` (what is stored), ``results``
(what apply/queries return), ``kv`` (ordered key-value boundary), ``keyspace`` (key
layout), ``apply`` (dispatch, bucket and object handlers), ``multipart``, ``admin`` (users,
chunkservers, placement, delete queue, EC profile), ``objects`` (chunk refcounts and
version bookkeeping), ``listing``/``versions``/``queries`` (reads), ``codec``/``snapshot``
(durable encoding), ``names`` (validation), ``machine`` (bytes-level adapter for Raft).
Imports only the stdlib, msgpack and ``blobstore.{types,errors}``.
"""

__all__: list[str] = []
