"""Console routes against an in-process gateway (LocalCatalog + MemoryObjectStore):
authentication and its refusals, CSRF and origin checks, pages and fragments, the bucket
browser (upload, list, download, delete), users and keys, non-admin isolation."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from blobstore.types import Address
from metadata.api import HeadObjectQuery, ListObjectsV2Query
from metadata.fsm.commands import (
    CreateBucket,
    DeleteBucket,
    PutAccessKey,
    PutUser,
    SetChunkserverState,
)
from metadata.fsm.results import ListObjectsPage, ObjectInfo
from tests.unit.console.conftest import (
    ROOT_KEY,
    ROOT_SECRET,
    Console,
    Session,
    csrf_of,
    login,
)

pytestmark = pytest.mark.asyncio

PAGES = [
    "/_console/",
    "/_console/cluster",
    "/_console/capacity",
    "/_console/redundancy",
    "/_console/buckets",
    "/_console/users",
    "/_console/b/anything",
]
FRAGMENTS = [
    "/_console/cluster/fragment",
    "/_console/capacity/fragment",
    "/_console/redundancy/fragment",
    "/_console/buckets/fragment",
    "/_console/users/fragment",
    "/_console/b/anything/fragment",
    "/_console/b/anything/object?key=x",
]


# -- nothing without a session ------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
async def test_pages_redirect_to_login_without_session(console: Console, path: str) -> None:
    async with console.client() as client:
        r = await client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/_console/login?next=")


@pytest.mark.parametrize("path", FRAGMENTS)
async def test_fragments_refused_without_session(console: Console, path: str) -> None:
    async with console.client() as client:
        r = await client.get(path, headers={"HX-Request": "true"})
    assert r.status_code == 401
    assert r.headers["hx-redirect"] == "/_console/login"
    assert "127.0.0.1" not in r.text


async def test_mutations_refused_without_session(console: Console) -> None:
    await console.catalog.execute(CreateBucket("data", "root"))
    async with console.client() as client:
        put = await client.put("/_console/b/data/object?key=a", content=b"x")
        post = await client.post("/_console/users", data={"name": "eve", "csrf": "x"})
        delete = await client.post("/_console/b/data/delete", data={"key": "a", "csrf": "x"})
    assert put.status_code == 401
    assert post.status_code == 401 and delete.status_code == 401
    with pytest.raises(Exception, match="does not exist"):
        await console.catalog.query(HeadObjectQuery("data", "a"))


async def test_forged_or_foreign_cookie_is_refused(console: Console) -> None:
    s = await console.login()
    cookie = s.client.cookies.get("bs_console")
    assert cookie
    body, mac = cookie.split(".")
    async with console.client() as client:
        client.cookies.set("bs_console", body + "." + mac[:-2] + "AA", path="/_console")
        assert (await client.get("/_console/cluster")).status_code == 303
    # a gateway with another cluster secret does not accept the cookie
    from gateway.app import create_app
    from gateway.console.mount import with_console

    other = with_console(
        create_app(console.catalog, console.store), secret=b"o" * 32, probe=console.probe
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other), base_url="http://console.test"
    ) as client:
        client.cookies.set("bs_console", cookie, path="/_console")
        assert (await client.get("/_console/cluster")).status_code == 303
    await s.client.aclose()


async def test_static_assets_and_login_page_are_public(console: Console) -> None:
    async with console.client() as client:
        js = await client.get("/_console/static/htmx.min.js")
        page = await client.get("/_console/login")
    assert js.status_code == 200 and b"htmx" in js.content[:200]
    assert page.status_code == 200 and 'name="secret_key"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


async def test_s3_requests_still_reach_the_s3_gateway(console: Console) -> None:
    async with console.client() as client:
        r = await client.get("/")
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content


# -- login / logout -------------------------------------------------------------------------
async def test_login_sets_a_strict_httponly_cookie(console: Console) -> None:
    async with console.client() as client:
        r = await login(client, ROOT_KEY, ROOT_SECRET)
        assert r.status_code == 303 and r.headers["location"] == "/_console/"
        set_cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
        session = next(v for v in set_cookie if v.startswith("bs_console="))
        assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
        assert "Path=/_console" in session
        home = await client.get("/_console/")
        assert home.status_code == 303 and home.headers["location"] == "/_console/cluster"


@pytest.mark.parametrize(
    ("key", "secret"),
    [(ROOT_KEY, "wrong-secret"), ("NOSUCHKEY", ROOT_SECRET), (ROOT_KEY, ""), ("", "")],
)
async def test_login_refuses_bad_credentials(console: Console, key: str, secret: str) -> None:
    async with console.client() as client:
        r = await login(client, key, secret)
        assert r.status_code in (400, 401)
        assert "bs_console=" not in r.headers.get("set-cookie", "").replace("bs_console_", "")
        assert (await client.get("/_console/cluster")).status_code == 303


async def test_login_needs_the_login_form_token(console: Console) -> None:
    async with console.client() as client:
        r = await client.post(
            "/_console/login", data={"access_key": ROOT_KEY, "secret_key": ROOT_SECRET}
        )
        assert r.status_code == 403
        assert (await client.get("/_console/cluster")).status_code == 303


async def test_login_redirects_only_inside_the_console(console: Console) -> None:
    async with console.client() as client:
        form = await client.get("/_console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token
        r = await client.post(
            "/_console/login",
            data={"login_token": token.group(1), "access_key": ROOT_KEY,
                  "secret_key": ROOT_SECRET, "next": "//evil.example/"},
        )  # fmt: skip
        assert r.headers["location"] == "/_console/"


async def test_logout_needs_csrf_and_ends_the_session(console: Console) -> None:
    s = await console.login()
    bad = await s.client.post("/_console/logout", data={"csrf": "nope"})
    assert bad.status_code == 403
    assert (await s.client.get("/_console/cluster")).status_code == 200
    out = await s.client.post("/_console/logout", data={"csrf": s.csrf})
    assert out.status_code == 303
    assert (await s.client.get("/_console/cluster")).status_code == 303
    await s.client.aclose()


async def test_deleting_the_key_ends_its_sessions(console: Console) -> None:
    await console.catalog.execute(PutUser("carol"))
    await console.catalog.execute(PutAccessKey("CAROLKEY", "carol-secret-1", "carol"))
    carol = await console.login("CAROLKEY", "carol-secret-1")
    assert (await carol.client.get("/_console/buckets")).status_code == 200
    # a new secret for the same key id also ends the session
    await console.catalog.execute(PutAccessKey("CAROLKEY", "carol-secret-2", "carol"))
    assert (await carol.client.get("/_console/buckets")).status_code == 303
    await carol.client.aclose()


# -- CSRF and origin on state changes -------------------------------------------------------
async def test_state_changes_need_the_csrf_token(console: Console) -> None:
    s = await console.login()
    r = await s.client.post("/_console/buckets", data={"name": "nocsrf"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = await s.client.post("/_console/buckets", data={"name": "nocsrf", "csrf": "AAAA"})
    assert r.status_code == 403
    await console.catalog.execute(CreateBucket("data", "root"))
    r = await s.client.put("/_console/b/data/object?key=k", content=b"abc")
    assert r.status_code == 403
    r = await s.client.put(
        "/_console/b/data/object?key=k", content=b"abc", headers={"X-CSRF-Token": "bad"}
    )
    assert r.status_code == 403
    buckets = await s.client.get("/_console/buckets/fragment")
    assert "nocsrf" not in buckets.text
    await s.client.aclose()


async def test_cross_origin_posts_are_refused(console: Console) -> None:
    s = await console.login()
    r = await s.client.post(
        "/_console/buckets",
        data={"name": "evil", "csrf": s.csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    ok = await s.client.post(
        "/_console/buckets",
        data={"name": "fine", "csrf": s.csrf},
        headers={"Origin": "http://console.test"},
    )
    assert ok.status_code == 303
    listing = await s.client.get("/_console/buckets/fragment")
    assert 'data-bucket="fine"' in listing.text and "evil" not in listing.text
    await s.client.aclose()


# -- cluster pages ---------------------------------------------------------------------------
async def test_cluster_page_shows_nodes_leader_and_health(console: Console) -> None:
    console.probe.dead.add("127.0.0.1:7102")
    console.probe.meta_down.add("127.0.0.1:7003")
    await console.catalog.execute(SetChunkserverState(3, "down"))
    s = await console.login()
    page = await s.client.get("/_console/cluster")
    assert page.status_code == 200
    html = page.text
    assert 'hx-get="/_console/cluster/fragment"' in html and "every 2s" in html
    assert re.search(r'id="leader">node 2<', html)
    assert re.search(r'id="term">7<', html)
    assert "127.0.0.1:7003" in html and "connection refused" in html
    rows = dict(re.findall(r'data-server="(\d+)" data-address="[^"]+" data-health="(\w+)"', html))
    assert rows == {"1": "ok", "2": "unreachable", "3": "down"}
    frag = await s.client.get("/_console/cluster/fragment", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and "<html" not in frag.text and 'id="chunkservers"' in frag.text
    await s.client.aclose()


async def test_capacity_chart(console: Console) -> None:
    s = await console.login()
    html = (await s.client.get("/_console/capacity")).text
    assert '<svg id="capacity-chart"' in html
    assert html.count('class="used"') >= 3 and "400.0 MiB / 1000.0 MiB" in html
    await s.client.aclose()


async def _one_chunk_object(console: Console, s: Session) -> None:
    await console.catalog.execute(CreateBucket("data", "root"))
    big = random.Random(1).randbytes(10_000)  # above the inline threshold: one chunk
    r = await s.client.put(
        "/_console/b/data/object?key=big", content=big, headers={"X-CSRF-Token": s.csrf}
    )
    assert r.status_code == 201


async def test_redundancy_from_the_catalog_follows_server_state(console: Console) -> None:
    s = await console.login()
    await _one_chunk_object(console, s)
    html = (await s.client.get("/_console/redundancy")).text
    # the memory store places its single shard on server 1 (k=1, m=0)
    assert re.search(r'id="chunks-total">1<', html) and re.search(r'id="chunks-full">1<', html)
    assert 'data-state="full"' in html
    await console.catalog.execute(SetChunkserverState(1, "down"))
    html = (await s.client.get("/_console/redundancy/fragment")).text
    assert re.search(r'id="chunks-lost">1<', html) and re.search(r'id="chunks-full">0<', html)
    assert 'data-state="at-risk"' in html
    await s.client.aclose()


async def test_redundancy_console_scan_uses_live_probes(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.console import status

    async def no_catalog_summary(catalog: object) -> None:
        return None

    monkeypatch.setattr(status, "_catalog_redundancy", no_catalog_summary)
    s = await console.login()
    await _one_chunk_object(console, s)
    html = (await s.client.get("/_console/redundancy")).text
    assert re.search(r'id="chunks-full">1<', html) and "console scan" in html
    console.probe.dead.add("127.0.0.1:7101")  # no catalog change: the probe alone
    html = (await s.client.get("/_console/redundancy/fragment")).text
    assert re.search(r'id="chunks-lost">1<', html) and re.search(r'id="chunks-full">0<', html)
    await s.client.aclose()


# -- buckets and the bucket browser ----------------------------------------------------------
async def test_upload_list_download_delete_roundtrip(console: Console) -> None:
    s = await console.login()
    r = await s.client.post("/_console/buckets", data={"name": "photos", "csrf": s.csrf})
    assert r.status_code == 303
    rng = random.Random(7)
    files = {
        "a.txt": b"hello console",
        "dir/b.bin": rng.randbytes(50_000),
        "dir/sub/c w ü.bin": rng.randbytes(9000),
        "empty": b"",
    }
    for key, data in files.items():
        r = await s.client.put(
            "/_console/b/photos/object",
            params={"key": key},
            content=data,
            headers={"X-CSRF-Token": s.csrf, "Content-Type": "application/x-test"},
        )
        assert r.status_code == 201, r.text
    info = await console.catalog.query(HeadObjectQuery("photos", "dir/b.bin"))
    assert isinstance(info, ObjectInfo) and info.record.headers.content_type == "application/x-test"
    assert info.record.etag == hashlib.md5(files["dir/b.bin"]).hexdigest()

    top = (await s.client.get("/_console/b/photos")).text
    assert 'data-key="a.txt"' in top and 'data-key="empty"' in top
    assert "?prefix=dir%2F" in top and 'data-key="dir/b.bin"' not in top
    sub = (await s.client.get("/_console/b/photos/fragment", params={"prefix": "dir/"})).text
    assert 'data-key="dir/b.bin"' in sub and "?prefix=dir%2Fsub%2F" in sub

    for key, data in files.items():
        got = await s.client.get("/_console/b/photos/object", params={"key": key})
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["content-type"] == "application/octet-stream"

    buckets = (await s.client.get("/_console/buckets/fragment")).text
    row = re.search(r'data-bucket="photos">.*?</tr>', buckets, re.S)
    assert row and '<td class="num objects">4</td>' in row.group(0)

    r = await s.client.post(
        "/_console/b/photos/delete", data={"key": "a.txt", "csrf": s.csrf, "prefix": ""}
    )
    assert r.status_code == 303
    gone = await s.client.get("/_console/b/photos/object", params={"key": "a.txt"})
    assert gone.status_code == 404 and "NoSuchKey" in gone.text
    await s.client.aclose()


async def test_upload_rejects_bad_keys(console: Console) -> None:
    s = await console.login()
    await console.catalog.execute(CreateBucket("data", "root"))
    for key in ("", "a\x00b", "x" * 1025, "tab\there"):
        r = await s.client.put(
            "/_console/b/data/object",
            params={"key": key},
            content=b"x",
            headers={"X-CSRF-Token": s.csrf},
        )
        assert r.status_code == 400, key
    await s.client.aclose()


async def test_upload_into_a_bucket_replaced_meanwhile_is_refused(console: Console) -> None:
    # the console authorises against the bucket record it read; if the bucket is deleted
    # and re-created (here by another user) while the body streams, the commit names the
    # old incarnation and the catalog refuses it: nothing lands in the new bucket
    s = await console.login()
    await console.catalog.execute(CreateBucket("shared", "root"))
    await console.catalog.execute(PutUser("bob"))

    async def body() -> AsyncIterator[bytes]:
        yield b"first half, "
        await console.catalog.execute(DeleteBucket("shared"))
        await console.catalog.execute(CreateBucket("shared", "bob"))
        yield b"second half"

    r = await s.client.put(
        "/_console/b/shared/object",
        params={"key": "k"},
        content=body(),
        headers={"X-CSRF-Token": s.csrf},
    )
    assert r.status_code == 404 and "NoSuchBucket" in r.text, r.text
    page = await console.catalog.query(ListObjectsV2Query("shared"))
    assert isinstance(page, ListObjectsPage) and not page.contents
    await s.client.aclose()


# -- users, keys and non-admin isolation -----------------------------------------------------
async def _make_user(admin: Session, name: str) -> tuple[str, str]:
    r = await admin.client.post("/_console/users", data={"name": name, "csrf": admin.csrf})
    assert r.status_code == 201, r.text
    key = re.search(r'id="new-access-key">([^<]+)<', r.text)
    secret = re.search(r'id="new-secret-key">([^<]+)<', r.text)
    assert key and secret
    return key.group(1), secret.group(1)


async def test_non_admin_sees_only_own_buckets_and_keys(console: Console) -> None:
    admin = await console.login()
    bob_key, bob_secret = await _make_user(admin, "bob")
    await admin.client.post("/_console/buckets", data={"name": "root-private", "csrf": admin.csrf})
    r = await admin.client.put(
        "/_console/b/root-private/object?key=secret.txt",
        content=b"top secret",
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert r.status_code == 201

    bob = await console.login(bob_key, bob_secret)
    await bob.client.post("/_console/buckets", data={"name": "bob-files", "csrf": bob.csrf})
    buckets = (await bob.client.get("/_console/buckets")).text
    assert 'data-bucket="bob-files"' in buckets and "root-private" not in buckets
    for path in ("/_console/cluster", "/_console/capacity/fragment", "/_console/redundancy"):
        assert (await bob.client.get(path)).status_code == 403, path
    assert (await bob.client.get("/_console/b/root-private")).status_code == 403
    assert (await bob.client.get("/_console/b/no-such-bucket")).status_code == 404
    dl = await bob.client.get("/_console/b/root-private/object?key=secret.txt")
    assert dl.status_code == 403 and b"top secret" not in dl.content
    up = await bob.client.put(
        "/_console/b/root-private/object?key=x", content=b"x", headers={"X-CSRF-Token": bob.csrf}
    )
    assert up.status_code == 403
    rm = await bob.client.post(
        "/_console/b/root-private/delete", data={"key": "secret.txt", "csrf": bob.csrf}
    )
    assert rm.status_code == 403
    rmb = await bob.client.post(
        "/_console/buckets/delete", data={"name": "root-private", "csrf": bob.csrf}
    )
    assert rmb.status_code == 403

    users = (await bob.client.get("/_console/users")).text
    assert 'data-user="bob"' in users and 'data-user="root"' not in users
    assert ROOT_KEY not in users
    assert (
        await bob.client.post("/_console/users", data={"name": "mallory", "csrf": bob.csrf})
    ).status_code == 403
    denied = await bob.client.post(
        "/_console/keys/delete", data={"access_key": ROOT_KEY, "csrf": bob.csrf}
    )
    assert denied.status_code == 403
    forged = await bob.client.post("/_console/keys", data={"user": "root", "csrf": bob.csrf})
    assert forged.status_code == 403
    # nav hides the cluster pages from non-admins
    assert "/_console/cluster" not in users
    await admin.client.aclose()
    await bob.client.aclose()


async def test_admin_manages_users_and_keys(console: Console) -> None:
    admin = await console.login()
    key, secret = await _make_user(admin, "dave")
    users = (await admin.client.get("/_console/users/fragment")).text
    assert 'data-user="dave"' in users and key in users and secret not in users
    r = await admin.client.post("/_console/keys", data={"user": "dave", "csrf": admin.csrf})
    assert r.status_code == 201
    second = re.search(r'id="new-access-key">([^<]+)<', r.text)
    assert second and second.group(1) in r.text
    dave = await console.login(key, secret)
    r = await admin.client.post(
        "/_console/keys/delete", data={"access_key": key, "csrf": admin.csrf}
    )
    assert r.status_code == 303
    assert (await dave.client.get("/_console/buckets")).status_code == 303
    r = await admin.client.post("/_console/users/delete", data={"name": "dave", "csrf": admin.csrf})
    assert r.status_code == 303
    users = (await admin.client.get("/_console/users/fragment")).text
    assert 'data-user="dave"' not in users
    self_delete = await admin.client.post(
        "/_console/users/delete", data={"name": "root", "csrf": admin.csrf}
    )
    assert self_delete.status_code == 409
    await admin.client.aclose()
    await dave.client.aclose()


async def test_csrf_token_is_per_session(console: Console) -> None:
    a = await console.login()
    b = await console.login()
    assert a.csrf != b.csrf
    r = await a.client.post("/_console/buckets", data={"name": "x1", "csrf": b.csrf})
    assert r.status_code == 403
    assert csrf_of((await a.client.get("/_console/buckets")).text) == a.csrf
    await a.client.aclose()
    await b.client.aclose()


async def test_registered_address_is_shown(console: Console) -> None:
    s = await console.login()
    html = (await s.client.get("/_console/cluster")).text
    assert str(Address("127.0.0.1", 7101)) in html
    await s.client.aclose()


async def test_virtual_hosted_s3_keys_under_console_are_not_shadowed(console: Console) -> None:
    from gateway.app import create_app
    from gateway.console.mount import with_console

    app = with_console(
        create_app(console.catalog, console.store, domain="s3.test"),
        secret=b"k" * 32,
        probe=console.probe,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test"
    ) as client:
        s3 = await client.get("/_console/login", headers={"Host": "photos.s3.test"})
        page = await client.get("/_console/login", headers={"Host": "s3.test"})
    assert s3.status_code == 403 and b"<Code>AccessDenied</Code>" in s3.content
    assert page.status_code == 200 and 'name="secret_key"' in page.text


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/_console/logout", {}),
        ("/_console/buckets", {"name": "newbucket"}),
        ("/_console/buckets/delete", {"name": "keep"}),
        ("/_console/b/keep/delete", {"key": "k"}),
        ("/_console/users", {"name": "eve"}),
        ("/_console/users/delete", {"name": "carol"}),
        ("/_console/keys", {"user": "root"}),
        ("/_console/keys/delete", {"access_key": "CAROLKEY"}),
    ],
)
async def test_every_post_route_checks_csrf(
    console: Console, path: str, fields: dict[str, str]
) -> None:
    await console.catalog.execute(CreateBucket("keep", "root"))
    await console.catalog.execute(PutUser("carol"))
    await console.catalog.execute(PutAccessKey("CAROLKEY", "carol-secret-1", "carol"))
    s = await console.login()
    for token in (None, "", "forged", s.csrf[:-1] + ("A" if s.csrf[-1] != "A" else "B")):
        data = {"pad": "1", **fields} if token is None else {**fields, "csrf": token}
        r = await s.client.post(path, data=data)
        assert r.status_code == 403, (path, token, r.status_code)
    # nothing changed, and the session is still valid
    users = (await s.client.get("/_console/users/fragment")).text
    assert 'data-user="carol"' in users and "CAROLKEY" in users and 'data-user="eve"' not in users
    buckets = (await s.client.get("/_console/buckets/fragment")).text
    assert 'data-bucket="keep"' in buckets and "newbucket" not in buckets
    await s.client.aclose()


async def test_without_jinja2_the_console_answers_503_and_s3_still_works(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.app import create_app
    from gateway.console import web
    from gateway.console.mount import with_console

    def no_jinja(*args: object, **kwargs: object) -> None:
        raise ImportError("No module named 'jinja2'")

    monkeypatch.setattr(web, "build_console", no_jinja)
    app = with_console(
        create_app(console.catalog, console.store), secret=b"k" * 32, probe=console.probe
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test"
    ) as client:
        page = await client.get("/_console/login")
        s3 = await client.get("/")
    assert page.status_code == 503 and "jinja2" in page.text
    assert s3.status_code == 403 and b"AccessDenied" in s3.content
