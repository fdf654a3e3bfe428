"""apply is total: malformed commands (wrong field types from a buggy or hostile proposer)
return an error value and leave no partial state behind."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import BlobstoreError, InternalError
from metadata.fsm import commands as c
from metadata.fsm import keyspace as ks
from metadata.fsm.commands import ClientCommand, CreateBucket, PutBucketVersioning
from metadata.fsm.state import Catalog

from .helpers import obj

COMMANDS = [getattr(c, n) for n in c.__all__ if dataclasses.is_dataclass(getattr(c, n))]
COMMANDS = [k for k in COMMANDS if k is not ClientCommand]
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 1 << 70),
    st.sampled_from(["bkt", "k", "a/b", "", "v1", "*", "Enabled", "up", "\x00"]),
    st.binary(max_size=3),
    st.tuples(),
    st.tuples(st.sampled_from(["x", "k"])),
)


@st.composite
def junk_command(draw: st.DrawFn) -> object:
    cls = draw(st.sampled_from(COMMANDS))
    values = [draw(junk) for _ in dataclasses.fields(cls)]
    return cls(*values)


@settings(deadline=None, max_examples=300)
@given(st.lists(junk_command(), min_size=1, max_size=5))
def test_junk_commands_never_raise_and_never_half_apply(cmds: list[object]) -> None:
    cat = Catalog()
    cat.apply(ClientCommand("", 0, 1, CreateBucket("bkt", "alice")))
    cat.apply(ClientCommand("", 0, 1, PutBucketVersioning("bkt", "Enabled")))
    cat.apply(ClientCommand("", 0, 1, obj("bkt", "k", b"x", chunked=True, version_id="v1")))
    for i, cmd in enumerate(cmds):
        before = cat.snapshot()
        state = [kv for kv in cat.kv.scan(b"") if kv[0] != ks.META]
        r = cat.apply(ClientCommand("", 0, 10 + i, cmd))  # type: ignore[arg-type]
        assert r is not None
        if isinstance(r, InternalError):
            assert cat.snapshot() == before
        elif isinstance(r, BlobstoreError):
            # a domain error is decided before any write: only the catalog clock moved
            assert [kv for kv in cat.kv.scan(b"") if kv[0] != ks.META] == state
