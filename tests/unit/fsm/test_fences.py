"""GC chunk fences in the catalog FSM: FenceChunks answers, commits of fenced ids, expiry.

See ``metadata/fsm/fences.py`` for the protocol and its invariant (a fenced id never has a
chunk record).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from blobstore.errors import ChunkFenced, InvalidArgument
from metadata.fsm import keyspace as ks
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import (
    AbortMultipartUpload,
    ClientCommand,
    CommitObject,
    CommitPart,
    CompletedPart,
    CompleteMultipartUpload,
    CopyObject,
    CreateBucket,
    CreateMultipartUpload,
    DeleteObject,
    FenceChunks,
    PutBucketVersioning,
)
from metadata.fsm.fences import FENCE_TTL_MS, MAX_FENCE_IDS, PURGE_MIN, get_fence
from metadata.fsm.machine import decode_entry
from metadata.fsm.records import Chunk, ChunkFence, ShardPlacement
from metadata.fsm.results import ChunksFenced, ObjectCommitted, PartCommitted
from metadata.fsm.state import Catalog

from .helpers import Driver, chunk, md5, obj, part

B = "fence-bucket"
DAY_MS = 24 * 3600 * 1000


def setup(versioned: bool = False) -> Driver:
    d = Driver()
    d(CreateBucket(B, "alice"))
    if versioned:
        d(PutBucketVersioning(B, "Enabled"))
    return d


def commit(key: str, cid: str, version_id: str = "v1") -> CommitObject:
    return CommitObject(B, key, version_id, "alice", 7, md5(b"x" * 7), chunks=(chunk(7, cid=cid),))


def state(d: Driver) -> list[tuple[bytes, object]]:
    """Everything but the catalog clock and the exactly-once sessions."""
    skip = (ks.META, ks.SESSION, ks.SESSION_BY_TIME)
    return [kv for kv in d.cat.kv.scan(b"") if not kv[0].startswith(skip)]


# -- answers ----------------------------------------------------------------------------
def test_unreferenced_ids_are_fenced_and_referenced_ones_live() -> None:
    d = setup()
    assert isinstance(d(commit("k", "live-1")), ObjectCommitted)
    got = d(FenceChunks(("orphan-1", "live-1", "orphan-1", "orphan-2"), server_id=7))
    assert got == ChunksFenced(("orphan-1", "orphan-2"), ("live-1",), 0)
    assert get_fence(d.cat.kv, "orphan-1") == ChunkFence("orphan-1", d.now_ms, 7)
    assert get_fence(d.cat.kv, "live-1") is None
    assert d.cat.count(ks.FENCE) == 2 and d.cat.count(ks.FENCE_BY_TIME) == 2


def test_refencing_keeps_the_original_fence_time() -> None:
    d = setup()
    d(FenceChunks(("o",)), now_ms=5_000)
    assert d(FenceChunks(("o",), 9), now_ms=8_000) == ChunksFenced(("o",), (), 0)
    assert get_fence(d.cat.kv, "o") == ChunkFence("o", 5_000, 0)
    assert d.cat.count(ks.FENCE_BY_TIME) == 1


def test_every_kind_of_reference_answers_live() -> None:
    d = setup(versioned=True)
    d(commit("cur", "current"))
    d(commit("old", "noncurrent", "v1"))
    d(commit("old", "newer", "v2"))  # v1 becomes noncurrent: still referenced
    d(CreateMultipartUpload(B, "mp", "u1", "alice"))
    p = part(B, "mp", "u1", 1, b"p" * 20)
    assert isinstance(d(p), PartCommitted)
    d(commit("src", "copied", "v1"))
    d(CopyObject(B, "src", B, "dst", "v9", "alice"))
    d(DeleteObject(B, "src", version_id="v1"))  # only the copy references it now
    ids = ("current", "noncurrent", "newer", p.chunks[0].chunk_id, "copied")
    assert d(FenceChunks(ids)) == ChunksFenced((), ids, 0)
    assert d.cat.count(ks.FENCE) == 0


def test_released_chunks_can_be_fenced() -> None:
    d = setup()
    d(commit("k", "c1"))
    d(DeleteObject(B, "k"))  # the chunk's shards are queued for deletion
    d(CreateMultipartUpload(B, "mp", "u1", "alice"))
    p = part(B, "mp", "u1", 1, b"p" * 20)
    d(p)
    d(AbortMultipartUpload(B, "mp", "u1"))
    pid = p.chunks[0].chunk_id
    assert d(FenceChunks(("c1", pid))) == ChunksFenced(("c1", pid), (), 0)


# -- commits of fenced ids -----------------------------------------------------------------
def test_commit_object_naming_a_fenced_chunk_fails_and_changes_nothing() -> None:
    d = setup()
    d(FenceChunks(("slow-1",)))
    before = state(d)
    two = CommitObject(
        B, "k", "v1", "alice", 14, md5(b"x" * 14),
        chunks=(chunk(7, cid="fresh-1"), chunk(7, cid="slow-1")),
    )  # fmt: skip
    err = d(two)
    assert isinstance(err, ChunkFenced)
    assert err.details == {"chunk_id": "slow-1", "bucket": B, "key": "k"}
    assert state(d) == before  # not even the fresh chunk was registered
    assert d.cat.get_chunk("fresh-1") is None
    assert isinstance(d(commit("k", "fresh-1")), ObjectCommitted)  # a retry, fresh ids


def test_commit_part_naming_a_fenced_chunk_fails_and_the_upload_completes_without_it() -> None:
    d = setup()
    d(CreateMultipartUpload(B, "mp", "u1", "alice"))
    slow = part(B, "mp", "u1", 1, b"a" * 20)
    d(FenceChunks((slow.chunks[0].chunk_id,)))
    before = state(d)
    assert isinstance(d(slow), ChunkFenced)
    assert state(d) == before
    again = part(B, "mp", "u1", 1, b"a" * 20)  # the client retries the part: fresh chunk
    assert isinstance(d(again), PartCommitted)
    done = d(CompleteMultipartUpload(B, "mp", "u1", (CompletedPart(1, again.etag),), "v1"))
    assert isinstance(done, ObjectCommitted)


def test_fence_is_checked_before_other_validation() -> None:
    d = setup()
    d(FenceChunks(("f",)))
    late = CommitObject("nobucket", "k", "v", "a", 7, "e", chunks=(chunk(7, cid="f"),))
    assert isinstance(d(late), ChunkFenced)


def test_a_retried_commit_that_won_the_race_keeps_its_answer() -> None:
    """Exactly-once: the commit applied before the fence; its retry (same seq) gets the
    remembered success even though GC has asked about the id since."""
    cat = Catalog()
    cat.apply(ClientCommand("gw", 1, 1, CreateBucket(B, "alice")))
    entry = ClientCommand("gw", 2, 2, commit("k", "c1"))
    first = cat.apply(entry)
    assert isinstance(first, ObjectCommitted)
    assert cat.apply(ClientCommand("cs", 1, 3, FenceChunks(("c1",)))) == ChunksFenced((), ("c1",))
    assert cat.apply(entry) == first


# -- expiry -----------------------------------------------------------------------------
def test_fences_expire_after_the_ttl_of_catalog_time() -> None:
    d = setup()
    t0 = 10 * DAY_MS
    d(FenceChunks(("old-1", "old-2")), now_ms=t0)
    d(FenceChunks(("new-1",)), now_ms=t0 + DAY_MS)
    d(FenceChunks(("x",)), now_ms=t0 + FENCE_TTL_MS)  # exactly the TTL: not expired yet
    assert get_fence(d.cat.kv, "old-1") is not None
    assert isinstance(d(commit("k", "old-1")), ChunkFenced)
    got = d(FenceChunks(("y",)), now_ms=t0 + FENCE_TTL_MS + 1)
    assert isinstance(got, ChunksFenced) and got.purged == 2
    assert get_fence(d.cat.kv, "old-1") is None and get_fence(d.cat.kv, "new-1") is not None
    assert d.cat.count(ks.FENCE) == d.cat.count(ks.FENCE_BY_TIME) == 3  # new-1, x, y
    assert isinstance(d(commit("k", "old-1")), ObjectCommitted)


def test_a_late_clock_does_not_expire_fences_early() -> None:
    """Expiry follows the catalog clock (max of proposer times), not one proposer's clock."""
    d = setup()
    d(FenceChunks(("a",)), now_ms=FENCE_TTL_MS)
    d(FenceChunks(("b",)), now_ms=1)  # a proposer with a slow clock
    assert d.cat.count(ks.FENCE) == 2


def test_purge_is_bounded_per_command_and_catches_up() -> None:
    d = setup()
    n = PURGE_MIN * 3
    for lo in range(0, n, 32):
        d(FenceChunks(tuple(f"o{i}" for i in range(lo, lo + 32))), now_ms=DAY_MS)
    later = DAY_MS + FENCE_TTL_MS + 1
    purged = []
    for i in range(4):
        got = d(FenceChunks((f"n{i}",)), now_ms=later)
        assert isinstance(got, ChunksFenced)
        purged.append(got.purged)
    assert purged == [PURGE_MIN, PURGE_MIN, PURGE_MIN, 0]
    assert d.cat.count(ks.FENCE) == d.cat.count(ks.FENCE_BY_TIME) == 4


# -- validation, encoding, replay ------------------------------------------------------------
def test_malformed_fence_commands_are_refused_without_effect() -> None:
    d = setup()
    before = state(d)
    for bad in (
        FenceChunks(()),
        FenceChunks(tuple(f"i{n}" for n in range(MAX_FENCE_IDS + 1))),
        FenceChunks(("ok", "")),
        FenceChunks(("a\0b",)),
        FenceChunks(("x" * 129,)),
        FenceChunks(("ok",), server_id=-1),
        FenceChunks(["ok"]),  # type: ignore[arg-type]
    ):
        assert isinstance(d(bad), InvalidArgument), bad
    assert state(d) == before


def test_fence_values_roundtrip_through_the_catalog_codec() -> None:
    for value in (
        ClientCommand("cs/1", 3, 77, FenceChunks(("a", "b"), 7)),
        ChunksFenced(("a",), ("b",), 2),
        ChunkFence("a", 77, 7),
        ChunkFenced("fenced", chunk_id="a", bucket=B, key="k"),
    ):
        assert decode_value(encode_value(value)) == value


def test_snapshot_keeps_fences_and_replicas_agree() -> None:
    entries = [
        ClientCommand("gw", 1, 1_000, CreateBucket(B, "alice")),
        ClientCommand("gw", 2, 2_000, commit("k", "c1")),
        ClientCommand("cs", 1, 3_000, FenceChunks(("c1", "o1", "o2"), 7)),
        ClientCommand("gw", 3, 4_000, commit("k2", "o1")),
    ]
    a, b = Catalog(), Catalog()
    results = [(a.apply(e), b.apply(e)) for e in entries]
    assert all(x == y for x, y in results) and isinstance(results[-1][0], ChunkFenced)
    assert a.snapshot() == b.snapshot()
    c = Catalog()
    c.restore(a.snapshot())
    assert get_fence(c.kv, "o1") == ChunkFence("o1", 3_000, 7)
    assert isinstance(c.apply(ClientCommand("gw", 4, 5_000, commit("k3", "o2"))), ChunkFenced)


# Made with the code before fences existed (git HEAD of this change): a bucket "old", object
# "k" on chunk "kept-1", object "gone" (chunk "gone-1") deleted, so its shards are queued.
OLD_SNAPSHOT = bytes.fromhex(
    "42534341544c4700000100000000000000000009c40a42616c696365006f6c64c400c40b5800000000"
    "00000fa06777c400c404626f6c64810897a36f6c64a5616c696365cd03e8ab556e76657273696f6e65"
    "64a770726976617465c0c0c407636b6570742d31810592810497a66b6570742d31a47a666563020140"
    "64928103930700a08103930801a001c412640000000000000007676f6e652d31000000811092810f93"
    "a6676f6e652d310700cd0fa0c412640000000000000008676f6e652d31000001811092810f93a6676f"
    "6e652d310801cd0fa0c4066f6f6c64006b81099ca46e756c6c64d92064343164386364393866303062"
    "32303465393830303939386563663834323765cd07d0a5616c69636501810699b362696e6172792f6f"
    "637465742d73747265616da0a0a0a0a09090a85354414e444152449091a66b6570742d31c090c2c403"
    "786777811294a2677704cd0fa0815493a4676f6e65c0c2c4017a811392cd0fa0028c33ab04"
)
# The log entry of a CommitObject of key "late" on chunk "late-1", encoded by that code.
OLD_ENTRY = bytes.fromhex(
    "814494a2677705cd1388812e9ca36f6c64a46c617465a27631a5616c69636564d92064343164386364"
    "393866303062323034653938303039393865636638343237658106"
    "99b362696e6172792f6f637465742d73747265616da0a0a0a0a09090a85354414e444152449091810497"
    "a66c6174652d31a47a66656302014064928103930700a08103930801a0c0c0c2"
)


def test_old_snapshots_and_log_entries_still_decode_and_can_be_fenced() -> None:
    cat = Catalog()
    cat.restore(OLD_SNAPSHOT)
    entry = decode_entry(OLD_ENTRY)
    assert isinstance(entry.command, CommitObject) and entry.command.key == "late"
    got = cat.apply(ClientCommand("cs", 1, 6_000, FenceChunks(("kept-1", "gone-1", "late-1"))))
    assert got == ChunksFenced(("gone-1", "late-1"), ("kept-1",), 0)
    assert isinstance(cat.apply(entry), ChunkFenced)  # the old entry, replayed after a fence


# -- the invariant under random histories -----------------------------------------------------
op = st.tuples(st.sampled_from(["commit", "delete", "fence", "part", "abort"]), st.integers(0, 5))


@settings(deadline=None, max_examples=150)
@given(st.lists(op, max_size=40))
def test_fenced_ids_never_have_chunk_records_and_fenced_commits_always_fail(
    ops: list[tuple[str, int]],
) -> None:
    d = setup()
    d(CreateMultipartUpload(B, "mp", "u1", "alice"))
    fenced: set[str] = set()
    for name, n in ops:
        cid = f"c{n}"
        if name == "commit":
            r = d(commit(f"k{n}", cid))
            assert isinstance(r, ChunkFenced) == (cid in fenced)
        elif name == "part":
            c = Chunk(cid, "zfec", 4, 2, 1 << 20, 1, (ShardPlacement(1, 0),))
            r = d(CommitPart(B, "mp", "u1", n + 1, 1, md5(b"p"), (c,)))
            assert isinstance(r, ChunkFenced) == (cid in fenced)
        elif name == "delete":
            d(DeleteObject(B, f"k{n}"))
        elif name == "abort":
            d(AbortMultipartUpload(B, "mp", "u1"))
            d(CreateMultipartUpload(B, "mp", "u1", "alice"))
        else:
            r = d(FenceChunks((cid,)))
            assert isinstance(r, ChunksFenced)
            assert (cid in r.fenced) == (d.cat.get_chunk(cid) is None)
            fenced.update(r.fenced)
        for f in fenced:
            assert d.cat.get_chunk(f) is None


def test_helpers_obj_is_unaffected_by_fences_of_other_ids() -> None:
    d = setup()
    d(FenceChunks(("unrelated",)))
    assert isinstance(d(obj(B, "k", b"abc", chunked=True)), ObjectCommitted)
