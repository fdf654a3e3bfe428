"""The console's pure parts: session cookies and CSRF tokens, chunk classification, and the
catalog queries it added (bucket usage, access keys without secrets) incl. their codec."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.console.session import SessionSigner, derive_session_key
from gateway.console.status import classify_chunks
from metadata.api import BucketUsageQuery, ListAccessKeysQuery, run_query
from metadata.fsm.codec import decode_value, encode_value
from metadata.fsm.commands import (
    ClientCommand,
    Command,
    CommitObject,
    CreateBucket,
    DeleteObject,
    PutAccessKey,
    PutBucketVersioning,
    PutUser,
)
from metadata.fsm.records import Chunk, ChunkRecord, ShardPlacement
from metadata.fsm.results import AccessKeySummary, BucketUsage
from metadata.fsm.state import Catalog

KEY = derive_session_key(b"s" * 32)
NOW = 1_800_000_000.0


def test_cookie_roundtrip_and_expiry() -> None:
    signer = SessionSigner(KEY, ttl_s=60)
    cookie, session = signer.issue("AKID", "secret", NOW)
    assert signer.verify(cookie, NOW + 59) == session
    assert signer.verify(cookie, NOW + 60) is None
    assert signer.verify(cookie, NOW - 1) is None
    assert session.secret_tag == signer.secret_tag("secret") != signer.secret_tag("other")


def test_cookie_from_another_key_is_refused() -> None:
    cookie, _ = SessionSigner(derive_session_key(b"a" * 32)).issue("AKID", "s", NOW)
    assert SessionSigner(derive_session_key(b"b" * 32)).verify(cookie, NOW) is None


@settings(deadline=None, max_examples=200)
@given(pos=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_tampered_cookie_is_refused(pos: int, flip: int) -> None:
    signer = SessionSigner(KEY)
    cookie, _ = signer.issue("AKID", "secret", NOW)
    raw = bytearray(cookie.encode("ascii"))
    i = pos % len(raw)
    raw[i] = (raw[i] + flip) % 128
    tampered = raw.decode("ascii", "replace")
    got = signer.verify(tampered, NOW)
    # base64 padding bits can make two texts decode alike; then the payload is unchanged
    assert got is None or got == signer.verify(cookie, NOW)


@settings(deadline=None, max_examples=100)
@given(st.text(max_size=300))
def test_garbage_cookies_never_verify(text: str) -> None:
    assert SessionSigner(KEY).verify(text, NOW) is None


def test_csrf_tokens_are_per_session() -> None:
    signer = SessionSigner(KEY)
    _, a = signer.issue("AKID", "secret", NOW)
    _, b = signer.issue("AKID", "secret", NOW)
    assert signer.check_csrf(a, signer.csrf_token(a))
    assert not signer.check_csrf(a, signer.csrf_token(b))
    assert not signer.check_csrf(a, "")
    assert not signer.check_csrf(a, None)


def test_login_tokens() -> None:
    signer = SessionSigner(KEY)
    raw, field = signer.login_token()
    assert signer.check_login_token(raw, field)
    _, other_field = signer.login_token()
    assert not signer.check_login_token(raw, other_field)
    assert not signer.check_login_token(None, field)
    assert not signer.check_login_token(raw, "")


def _chunk(cid: str, servers: tuple[int, ...], k: int = 4, m: int = 2) -> ChunkRecord:
    shards = tuple(ShardPlacement(s, i) for i, s in enumerate(servers))
    return ChunkRecord(Chunk(cid, "zfec", k, m, 1 << 20, 4 << 20, shards), 1)


def test_classify_chunks() -> None:
    chunks = [_chunk("a", (1, 2, 3, 4, 5, 6)), _chunk("b", (1, 2, 3, 4, 5, 7))]
    assert classify_chunks(chunks, {1, 2, 3, 4, 5, 6, 7}) == (2, 2, 0, 0, 0)
    assert classify_chunks(chunks, {1, 2, 3, 4, 5, 6}) == (2, 1, 1, 0, 0)
    assert classify_chunks(chunks, {1, 2, 3, 4, 5}) == (2, 0, 2, 0, 0)
    assert classify_chunks(chunks, {1, 2, 3, 4}) == (2, 0, 0, 2, 0)
    assert classify_chunks(chunks, {1, 2, 3}) == (2, 0, 0, 0, 2)
    assert classify_chunks([_chunk("c", (1, 2), k=2, m=0)], {1, 2}) == (1, 1, 0, 0, 0)
    assert classify_chunks([], set()) == (0, 0, 0, 0, 0)


_SEQ = itertools.count(1)


def _apply(cat: Catalog, *commands: Command) -> None:
    for c in commands:
        result = cat.apply(ClientCommand("t", next(_SEQ), 1_000, c))
        assert not isinstance(result, Exception), result


def _put(bucket: str, key: str, size: int, vid: str) -> CommitObject:
    return CommitObject(bucket, key, vid, "u", size, "e" * 32, inline_data=b"x" * size)


def test_bucket_usage_counts_current_and_older_versions() -> None:
    cat = Catalog()
    _apply(
        cat,
        PutUser("u"),
        PutUser("w"),
        CreateBucket("aaa", "u"),
        CreateBucket("aaab", "w"),
        CreateBucket("vvv", "u"),
        PutBucketVersioning("vvv", "Enabled"),
        _put("aaa", "k1", 10, "1"),
        _put("aaa", "k2", 20, "2"),
        _put("aaab", "k", 5, "3"),
        _put("vvv", "k", 7, "4"),
        _put("vvv", "k", 9, "5"),
        DeleteObject("vvv", "gone", None, "6"),
    )
    usage = run_query(cat, BucketUsageQuery())
    assert usage == (
        BucketUsage("aaa", "u", 1_000, 2, 30, 0, 0, True),
        BucketUsage("aaab", "w", 1_000, 1, 5, 0, 0, True),
        BucketUsage("vvv", "u", 1_000, 1, 9, 2, 7, True),
    )
    mine = run_query(cat, BucketUsageQuery("w"))
    assert isinstance(mine, tuple) and [b.bucket for b in mine] == ["aaab"]
    capped = run_query(cat, BucketUsageQuery(None, max_scan=3))
    assert isinstance(capped, tuple)
    assert [(b.objects, b.exact) for b in capped] == [(2, True), (1, True), (0, False)]
    assert decode_value(encode_value(usage)) == usage


def test_list_access_keys_has_no_secrets() -> None:
    cat = Catalog()
    _apply(
        cat,
        PutUser("u"),
        PutUser("w"),
        PutAccessKey("K2", "secret-2", "u"),
        PutAccessKey("K1", "secret-1", "u"),
        PutAccessKey("K3", "secret-3", "w"),
    )
    everyone = run_query(cat, ListAccessKeysQuery())
    assert everyone == (
        AccessKeySummary("K1", "u", 1_000),
        AccessKeySummary("K2", "u", 1_000),
        AccessKeySummary("K3", "w", 1_000),
    )
    assert run_query(cat, ListAccessKeysQuery("u")) == everyone[:2]
    assert run_query(cat, ListAccessKeysQuery("nobody")) == ()
    assert b"secret" not in encode_value(everyone)
    assert decode_value(encode_value(everyone)) == everyone
