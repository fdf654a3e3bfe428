"""Exactly-once sessions, proposer-time expiry, totality (errors and rollback)."""

from __future__ import annotations

import pytest

from blobstore.errors import BucketAlreadyOwnedByYou, InternalError, InvalidArgument
from metadata.fsm import state as state_mod
from metadata.fsm.apply import ApplyConfig
from metadata.fsm.commands import ClientCommand, CreateBucket, DeleteObject, Noop
from metadata.fsm.kv import OrderedKV
from metadata.fsm.results import BucketCreated, ObjectCommitted, Result
from metadata.fsm.state import Catalog

from .helpers import obj


def _cc(client: str, seq: int, now: int, cmd: object) -> ClientCommand:
    return ClientCommand(client, seq, now, cmd)  # type: ignore[arg-type]


def test_retry_returns_remembered_result_without_reapplying() -> None:
    cat = Catalog()
    cat.apply(_cc("gw", 1, 10, CreateBucket("bkt", "alice")))
    put = _cc("gw", 2, 20, obj("bkt", "k", b"one", chunked=True))
    first = cat.apply(put)
    assert isinstance(first, ObjectCommitted)
    chunks_before = cat.list_chunks()
    assert cat.apply(put) == first  # retried: same result
    assert cat.list_chunks() == chunks_before  # ... and not applied twice
    assert cat.delete_queue_page().entries == ()
    # a retried error is remembered too
    cat.apply(_cc("gw", 3, 30, CreateBucket("bkt", "alice")))
    again = cat.apply(_cc("gw", 3, 30, CreateBucket("bkt", "alice")))
    assert isinstance(again, BucketAlreadyOwnedByYou)


def test_retry_of_delete_after_overwrite_is_not_reapplied() -> None:
    cat = Catalog()
    cat.apply(_cc("a", 1, 1, CreateBucket("bkt", "alice")))
    cat.apply(_cc("a", 2, 2, obj("bkt", "k", b"1")))
    delete = _cc("a", 3, 3, DeleteObject("bkt", "k"))
    cat.apply(delete)
    cat.apply(_cc("b", 1, 4, obj("bkt", "k", b"2")))  # another client writes k again
    cat.apply(delete)  # a late duplicate of the delete must not remove b's write
    assert cat.head_object("bkt", "k").record.inline_data == b"2"


def test_stale_and_invalid_sequence() -> None:
    cat = Catalog()
    cat.apply(_cc("gw", 5, 1, Noop()))
    r = cat.apply(_cc("gw", 4, 2, CreateBucket("bkt", "alice")))
    assert isinstance(r, InvalidArgument) and r.details["code"] == "StaleSequence"
    assert isinstance(cat.apply(_cc("gw2", 0, 2, Noop())), InvalidArgument)
    assert cat.list_buckets() == ()


def test_anonymous_commands_are_not_deduplicated() -> None:
    cat = Catalog()
    assert cat.apply(_cc("", 0, 1, CreateBucket("bkt", "alice"))) == BucketCreated("bkt")
    assert isinstance(
        cat.apply(_cc("", 0, 1, CreateBucket("bkt", "alice"))), BucketAlreadyOwnedByYou
    )
    assert cat.session("") is None


def test_sessions_expire_on_proposer_time() -> None:
    cat = Catalog(session_ttl_ms=1_000)
    cat.apply(_cc("old", 1, 100, CreateBucket("bkt", "alice")))
    cat.apply(_cc("busy", 1, 100, Noop()))
    cat.apply(_cc("busy", 2, 900, Noop()))
    assert cat.session("old") is not None
    cat.apply(_cc("x", 1, 1_050, Noop()))  # 1050 - 1000 = 50 < 100: nothing expires yet
    assert cat.session("old") is not None
    cat.apply(_cc("x", 2, 1_101, Noop()))
    assert cat.session("old") is None and cat.session("busy") is not None
    # after expiry the same (client, seq) is applied as new (documented TTL contract)
    assert isinstance(
        cat.apply(_cc("old", 1, 1_200, CreateBucket("bkt", "alice"))), BucketAlreadyOwnedByYou
    )
    cat.apply(_cc("x", 3, 5_000, Noop()))
    assert cat.session("busy") is None and cat.session("x") is not None


def test_bad_entries_and_unknown_commands_are_errors_not_exceptions() -> None:
    cat = Catalog()
    assert isinstance(cat.apply("garbage"), InvalidArgument)  # type: ignore[arg-type]
    assert isinstance(cat.apply(_cc("c", 1, 1, "not a command")), InvalidArgument)
    weird = _cc("c", 2, 1, CreateBucket(None, "alice"))  # type: ignore[arg-type]
    assert isinstance(cat.apply(weird), BaseException)


def test_exception_inside_apply_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    cat = Catalog()
    cat.apply(_cc("c", 1, 1, CreateBucket("bkt", "alice")))
    before = cat.snapshot()

    def broken(kv: OrderedKV, command: object, now_ms: int, config: ApplyConfig) -> Result:
        kv.put(b"b" + b"zzz", "half-written")
        kv.delete(b"bbkt")
        raise RuntimeError("bug")

    monkeypatch.setattr(state_mod, "apply_command", broken)
    r = cat.apply(_cc("c", 2, 50, Noop()))
    assert isinstance(r, InternalError)
    assert cat.snapshot() == before
