"""A stale bucket cache never grants access to a re-created bucket of another owner.

Two gateway workers share one catalog and store. Worker 1 has alice's bucket "shared" in
its bucket cache; through worker 2 the bucket is deleted and re-created by bob, who puts
objects in it. Within the cache TTL (here: frozen, so the cache is always fresh), alice's
requests through worker 1 must be refused and leave bob's bucket exactly as it was.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from gateway.app import create_app
from metadata.api import GetBucketQuery, ListObjectVersionsQuery, Query, ReadMode
from metadata.fsm.results import ListVersionsPage
from tests.unit.gateway.test_app_support import ALICE, BOB, HOST, Gateway, Key, make_gateway

B = "shared"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass
class Workers:
    one: Gateway  # alice's requests, with the stale cache
    two: Gateway  # where the bucket is replaced


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    one = await make_gateway()
    one.app.services.bucket_ttl_s = 1e9  # cached records never expire during the test
    app2 = create_app(one.catalog, one.store, auth_ttl_s=0.0)
    client2 = httpx.AsyncClient(transport=httpx.ASGITransport(app=app2), base_url=f"http://{HOST}")
    two = Gateway(app2, one.catalog, one.store, client2)
    yield Workers(one, two)
    await one.client.aclose()
    await client2.aclose()


def _code(resp: httpx.Response) -> str:
    return ET.fromstring(resp.content).findtext("Code") or "" if resp.content else ""


async def _ok(resp: Awaitable[httpx.Response]) -> httpx.Response:
    got = await resp
    assert got.status_code < 300, (got.status_code, got.text)
    return got


async def _bob_state(gw: Gateway) -> list[tuple[str, str, str, bool]]:
    """Every version in the bucket, with its bytes (the catalog's view, no auth)."""
    page = await gw.catalog.query(ListObjectVersionsQuery(B))
    assert isinstance(page, ListVersionsPage)
    out = []
    for v in page.versions:
        body = (await _ok(gw.request("GET", f"/{B}/{v.key}", key=BOB))).text
        out.append((v.key, v.etag, body, v.is_latest))
    return out


async def _cache_alices_bucket(w: Workers) -> str:
    """Alice's bucket with an upload in progress, cached by worker 1; returns the upload id."""
    alice = w.one.as_user(ALICE)
    await _ok(alice.request("PUT", f"/{B}"))
    await _ok(alice.request("PUT", "/alices-other"))
    await _ok(alice.put("alices-other", "src", b"alice's own data"))
    await _ok(alice.put(B, "k", b"alice's data"))  # caches the bucket record in worker 1
    created = await _ok(alice.request("POST", f"/{B}/mp", "uploads="))
    upload_id = ET.fromstring(created.content).findtext(f"{NS}UploadId")
    assert upload_id
    return upload_id


async def _replace_bucket(w: Workers, new_owner: Key) -> None:
    """Through worker 2: alice empties and deletes the bucket; it is created again."""
    alice = w.two.as_user(ALICE)
    await _ok(alice.request("DELETE", f"/{B}/k"))
    await _ok(alice.request("DELETE", f"/{B}"))
    owner = w.two.as_user(new_owner)
    await _ok(owner.request("PUT", f"/{B}"))
    await _ok(owner.put(B, "k", b"bob's secret"))
    await _ok(owner.put(B, "other", b"bob's other secret"))


Attack = Callable[[Gateway, str], Awaitable[httpx.Response]]

_DELETE_BODY = (
    b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Object><Key>k</Key></Object><Object><Key>other</Key></Object></Delete>"
)
_DELETE_MD5 = base64.b64encode(hashlib.md5(_DELETE_BODY).digest()).decode()

ATTACKS: dict[str, Attack] = {
    "get": lambda g, _u: g.get(B, "k"),
    "head": lambda g, _u: g.request("HEAD", f"/{B}/k"),
    "get-tagging": lambda g, _u: g.request("GET", f"/{B}/k", "tagging="),
    "get-attributes": lambda g, _u: g.request(
        "GET", f"/{B}/k", "attributes=", headers={"x-amz-object-attributes": "ETag,ObjectSize"}
    ),
    "put-overwrite": lambda g, _u: g.put(B, "k", b"alice overwrites"),
    "put-new": lambda g, _u: g.put(B, "planted", b"alice plants"),
    "put-tagging": lambda g, _u: g.request(
        "PUT",
        f"/{B}/k",
        "tagging=",
        body=b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    ),
    "copy-into": lambda g, _u: g.request(
        "PUT", f"/{B}/copied", headers={"x-amz-copy-source": "/alices-other/src"}
    ),
    "copy-out": lambda g, _u: g.request(
        "PUT", "/alices-other/stolen", headers={"x-amz-copy-source": f"/{B}/k"}
    ),
    "delete": lambda g, _u: g.request("DELETE", f"/{B}/other"),
    "delete-objects": lambda g, _u: g.request(
        "POST", f"/{B}", "delete=", body=_DELETE_BODY, headers={"content-md5": _DELETE_MD5}
    ),
    "list-v1": lambda g, _u: g.request("GET", f"/{B}"),
    "list-v2": lambda g, _u: g.request("GET", f"/{B}", "list-type=2"),
    "list-versions": lambda g, _u: g.request("GET", f"/{B}", "versions="),
    "list-uploads": lambda g, _u: g.request("GET", f"/{B}", "uploads="),
    "create-upload": lambda g, _u: g.request("POST", f"/{B}/mp2", "uploads="),
    "upload-part": lambda g, u: g.request(
        "PUT", f"/{B}/mp", f"partNumber=1&uploadId={u}", body=b"p" * 10
    ),
    "list-parts": lambda g, u: g.request("GET", f"/{B}/mp", f"uploadId={u}"),
    "abort-upload": lambda g, u: g.request("DELETE", f"/{B}/mp", f"uploadId={u}"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_the_old_owner_is_refused_on_a_bucket_re_created_by_another_user(
    workers: Workers, name: str
) -> None:
    upload_id = await _cache_alices_bucket(workers)
    await _replace_bucket(workers, BOB)
    before = await _bob_state(workers.two)
    assert [(k, body) for k, _e, body, _l in before] == [
        ("k", "bob's secret"),
        ("other", "bob's other secret"),
    ]

    resp = await ATTACKS[name](workers.one.as_user(ALICE), upload_id)

    assert resp.status_code in (403, 404), (resp.status_code, resp.text)
    assert b"secret" not in resp.content
    if resp.content:  # HEAD has no body
        assert _code(resp) in ("AccessDenied", "NoSuchBucket", "NoSuchUpload"), resp.text
    assert await _bob_state(workers.two) == before
    copied = await workers.two.as_user(ALICE).get("alices-other", "stolen")
    assert copied.status_code == 404


async def _replaced_behind_the_cache(w: Workers, new_owner: Key) -> tuple[list[str], Gateway]:
    """``_cache_alices_bucket`` then ``_replace_bucket``; (bucket reads of worker 1 from
    now on, alice on worker 1)."""
    await _cache_alices_bucket(w)
    await _replace_bucket(w, new_owner)
    return _count_bucket_reads(w.one), w.one.as_user(ALICE)


async def test_the_refusal_is_access_denied_and_the_stale_entry_is_replaced(
    workers: Workers,
) -> None:
    reads, alice = await _replaced_behind_the_cache(workers, BOB)
    first = await alice.get(B, "k")
    assert first.status_code == 403 and _code(first) == "AccessDenied"
    assert reads == [B]  # the catalog refused the stale incarnation: read again, denied
    second = await alice.put(B, "k", b"again")
    assert second.status_code == 403 and _code(second) == "AccessDenied"
    assert reads == [B]  # the cache now holds bob's record: refused without a catalog read


async def test_the_same_owner_re_creating_the_bucket_is_served_through_a_stale_cache(
    workers: Workers,
) -> None:
    reads, alice = await _replaced_behind_the_cache(workers, ALICE)
    # alice's own new data (``_replace_bucket`` writes the same bytes whoever the owner is)
    assert (await _ok(alice.get(B, "k"))).text == "bob's secret"
    assert reads == [B]  # one re-read of the replaced bucket, then the call again
    await _ok(alice.put(B, "k", b"alice's new data"))
    await _ok(alice.request("DELETE", f"/{B}/other"))
    listing = await _ok(alice.request("GET", f"/{B}", "list-type=2"))
    assert b"<Key>k</Key>" in listing.content and b"<Key>other</Key>" not in listing.content
    assert reads == [B]  # later requests use the refreshed cache entry
    assert (await _ok(workers.two.as_user(ALICE).get(B, "k"))).text == "alice's new data"


async def test_a_deleted_bucket_answers_no_such_bucket_through_a_stale_cache(
    workers: Workers,
) -> None:
    await _cache_alices_bucket(workers)
    alice2 = workers.two.as_user(ALICE)
    await _ok(alice2.request("DELETE", f"/{B}/k"))
    await _ok(alice2.request("DELETE", f"/{B}"))
    alice = workers.one.as_user(ALICE)
    for resp in (await alice.get(B, "k"), await alice.put(B, "k", b"x")):
        assert resp.status_code == 404 and _code(resp) == "NoSuchBucket"
    missing = await workers.one.catalog.query(ListObjectVersionsQuery("alices-other"))
    assert isinstance(missing, ListVersionsPage)  # the other bucket is untouched


def _count_bucket_reads(gw: Gateway) -> list[str]:
    """Record the bucket names of every GetBucketQuery the gateway sends from now on."""
    seen: list[str] = []
    inner = gw.catalog.query

    async def query(
        q: Query, *, mode: ReadMode = ReadMode.LINEARIZABLE, timeout_s: float = 10.0
    ) -> object:
        if isinstance(q, GetBucketQuery):
            seen.append(q.bucket)
        return await inner(q, mode=mode, timeout_s=timeout_s)

    gw.catalog.query = query  # type: ignore[method-assign]
    return seen
