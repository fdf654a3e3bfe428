"""The Raft-facing adapter: entries as bytes, Noop for empty data, deferred serializer."""

from __future__ import annotations

from blobstore.errors import InvalidArgument
from metadata.fsm.commands import ClientCommand, CreateBucket
from metadata.fsm.machine import CatalogStateMachine, decode_entry, encode_entry
from metadata.fsm.results import BucketCreated, NoopApplied

from .helpers import obj


def test_apply_bytes_snapshot_restore() -> None:
    sm = CatalogStateMachine()
    entry = ClientCommand("gw", 1, 10, CreateBucket("bkt", "alice"))
    assert decode_entry(encode_entry(entry)) == entry
    assert sm.apply(1, encode_entry(entry)) == BucketCreated("bkt")
    assert sm.apply(2, b"") == NoopApplied()
    assert isinstance(sm.apply(3, b"\xc1garbage"), InvalidArgument)
    assert isinstance(sm.apply(4, encode_entry(CreateBucket("x", "y"))), InvalidArgument)  # type: ignore[arg-type]
    serialize = sm.snapshot()
    sm.apply(5, encode_entry(ClientCommand("gw", 2, 20, obj("bkt", "later", b"x"))))
    other = CatalogStateMachine()
    other.restore(serialize())
    assert other.catalog.list_objects("bkt").contents == ()  # frozen before the write
    assert [o.key for o in sm.catalog.list_objects("bkt").contents] == ["later"]
    assert sm.applied_index == 5
