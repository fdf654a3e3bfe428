"""The console's routes: server-rendered pages plus htmx-polled fragments under ``/_console``.

Every page ``/_console/X`` has a fragment ``/_console/X/fragment`` that the page polls with
htmx (``hx-trigger="every Ns"``), so the data updates without a reload. Only ``/login`` and
``/static/*`` are reachable without a session; unauthenticated page requests are redirected
to the login page, fragment and API requests get 401 (htmx follows ``HX-Redirect``).
Cluster pages (cluster, capacity, redundancy) are for admins; other users see their own
buckets and keys only (``gateway.auth.authorize_bucket``, as S3 requests do).

Object bytes go through the gateway's ``ObjectStore`` exactly as S3 PutObject / GetObject
do: uploads are raw ``PUT`` bodies (sent by ``console.js`` with XHR) streamed into
``store.write`` and committed with ``CommitObject``; downloads stream ``store.read``.
"""

from __future__ import annotations

import re
import secrets
import string
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from blobstore.errors import (
    AccessDenied,
    BlobstoreError,
    InvalidArgument,
    NoSuchBucket,
    NoSuchKey,
    Unavailable,
)
from blobstore.log import get_logger
from gateway.auth import authorize_bucket
from gateway.console.auth import COOKIE, LOGIN_COOKIE, ConsoleAuth, FormError, Viewer, read_form
from gateway.console.status import ClusterProbe, gather_cluster, gather_redundancy
from gateway.context import Services
from gateway.errors import S3Error
from gateway.storage import BodyPiece
from metadata.api import (
    BucketUsageQuery,
    GetBucketQuery,
    HeadObjectQuery,
    ListAccessKeysQuery,
    ListObjectsV2Query,
    ListUsersQuery,
    ReadMode,
)
from metadata.fsm import commands as cmd
from metadata.fsm.records import BucketRecord, ObjectHeaders
from metadata.fsm.results import ListObjectsPage, ObjectInfo

__all__ = ["PREFIX", "build_console"]

log = get_logger(__name__)

PREFIX = "/_console"
HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]
_USER_NAME = re.compile(r"^[A-Za-z0-9_.@+=,-]{1,64}$")
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _valid_key(key: str) -> bool:
    raw = key.encode("utf-8", "surrogatepass")
    return 0 < len(raw) <= 1024 and not any(ord(ch) < 32 or ord(ch) == 127 for ch in key)


class _Console:
    """Route handlers sharing the gateway services, auth and templates."""

    def __init__(
        self, services: Services, auth: ConsoleAuth, probe: ClusterProbe, scan_ttl_s: float
    ) -> None:
        self.sv = services
        self.auth = auth
        self.probe = probe
        self.scan_ttl_s = scan_ttl_s
        self._cache: dict[str, tuple[float, Any]] = {}
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters["bytes"] = human_bytes
        env.filters["when"] = _when
        env.filters["urlq"] = lambda s: urllib.parse.quote(str(s), safe="")
        env.globals["base"] = PREFIX
        env.globals["now_label"] = lambda: datetime.now(UTC).strftime("%H:%M:%S UTC")

    # -- plumbing ----------------------------------------------------------------------
    def render(
        self, request: Request, name: str, ctx: dict[str, Any], status: int = 200
    ) -> Response:
        response = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers.update(_SECURITY_HEADERS)
        return response

    @staticmethod
    def _unauthenticated(request: Request) -> Response:
        login = f"{PREFIX}/login"
        if request.method == "GET" and "HX-Request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{login}?next={urllib.parse.quote(target)}", 303)
        return PlainTextResponse("login required", 401, headers={"HX-Redirect": login})

    def page(self, *, admin: bool = False, mutation: bool = False) -> Callable[..., Handler]:
        """Decorator: require a session (and admin); map domain errors to small HTML/text
        error responses. Mutations: a PUT (raw upload body) must carry the CSRF token in
        ``X-CSRF-Token``, checked here; POST handlers read their form with ``form()``,
        which checks its ``csrf`` field (``test_every_post_route_checks_csrf``)."""

        def wrap(fn: Callable[[Request, Viewer], Awaitable[Response]]) -> Handler:
            async def handler(request: Request) -> Response:
                try:
                    viewer = await self.auth.viewer(request)
                    if viewer is None:
                        return self._unauthenticated(request)
                    if admin and not viewer.is_admin:
                        return self._error(request, 403, "This page is for administrators.")
                    if mutation and request.method == "PUT":
                        token = request.headers.get("x-csrf-token")
                        self.auth.check_mutation(request, viewer, token)
                    return await fn(request, viewer)
                except FormError as e:
                    return self._error(request, e.status, str(e))
                except AccessDenied as e:
                    return self._error(request, 403, e.message or "Access denied")
                except (NoSuchBucket, NoSuchKey) as e:
                    return self._error(request, 404, f"{e.code}: {e.message}")
                except Unavailable as e:
                    return self._error(request, 503, f"cluster unavailable: {e.message}")
                except S3Error as e:
                    return self._error(request, e.status, e.message)
                except BlobstoreError as e:
                    return self._error(request, 400, f"{e.code}: {e.message}")

            return handler

        return wrap

    def _error(self, request: Request, status: int, message: str) -> Response:
        if "HX-Request" in request.headers or request.method == "PUT":
            return PlainTextResponse(message, status, headers=_SECURITY_HEADERS)
        return self.render(request, "error.html", {"message": message, "viewer": None}, status)

    async def form(self, request: Request, viewer: Viewer) -> dict[str, str]:
        fields = await read_form(request)
        self.auth.check_mutation(request, viewer, fields.get("csrf"))
        return fields

    async def bucket(self, viewer: Viewer, name: str) -> BucketRecord:
        rec = await self.sv.catalog.query(GetBucketQuery(name))
        assert isinstance(rec, BucketRecord)
        authorize_bucket(viewer.principal, rec)
        return rec

    # -- login / logout ----------------------------------------------------------------
    def _login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        raw, field = self.auth.signer.login_token()
        nxt = request.query_params.get("next", "")
        ctx = {"viewer": None, "error": error, "login_token": field, "next": nxt}
        response = self.render(request, "login.html", ctx, status)
        response.set_cookie(
            LOGIN_COOKIE, raw, max_age=900, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def login_get(self, request: Request) -> Response:
        if await self.auth.viewer(request) is not None:
            return RedirectResponse(f"{PREFIX}/", 303)
        return self._login_page(request)

    async def login_post(self, request: Request) -> Response:
        try:
            fields = await read_form(request)
        except FormError as e:
            return self._login_page(request, str(e), e.status)
        if not self.auth.signer.check_login_token(
            request.cookies.get(LOGIN_COOKIE), fields.get("login_token")
        ):
            return self._login_page(request, "The login form expired; please try again.", 403)
        client = request.client.host if request.client else "?"
        try:
            cookie = await self.auth.login(
                client, fields.get("access_key", "").strip(), fields.get("secret_key", "")
            )
        except Unavailable as e:
            return self._login_page(request, f"Cluster unavailable: {e.message}", 503)
        if cookie is None:
            log.info("console login refused", client=client)
            return self._login_page(request, "Wrong access key or secret.", 401)
        nxt = fields.get("next", "")
        if not nxt.startswith(PREFIX + "/") or "//" in nxt or "\\" in nxt:
            nxt = f"{PREFIX}/"
        response = RedirectResponse(nxt, 303)
        response.set_cookie(
            COOKIE, cookie, max_age=self.auth.signer.ttl_s, path=PREFIX, httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
        log.info("console login", access_key=fields.get("access_key", ""))
        return response

    async def logout(self, request: Request, viewer: Viewer) -> Response:
        await self.form(request, viewer)
        response = RedirectResponse(f"{PREFIX}/login", 303)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response

    async def home(self, request: Request, viewer: Viewer) -> Response:
        return RedirectResponse(f"{PREFIX}/{'cluster' if viewer.is_admin else 'buckets'}", 303)

    async def cached(self, key: str, ttl_s: float, make: Callable[[], Awaitable[Any]]) -> Any:
        """``make()``'s value, shared by requests for ``ttl_s`` (expensive catalog scans:
        every open console tab polls them)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await make()
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[key] = (now + ttl_s, value)
        return value

    # -- cluster, capacity, redundancy -------------------------------------------------
    async def cluster(self, request: Request, viewer: Viewer, name: str) -> Response:
        view = await gather_cluster(self.sv.catalog, self.probe)
        ctx: dict[str, Any] = {"viewer": viewer, "cluster": view, "page": name}
        if name == "redundancy":
            ctx["redundancy"] = await self.cached(
                "redundancy", self.scan_ttl_s, lambda: gather_redundancy(self.sv.catalog, view)
            )
        fragment = request.url.path.endswith("/fragment")
        return self.render(request, f"{'_' if fragment else ''}{name}.html", ctx)

    # -- buckets ---------------------------------------------------------------------------
    async def buckets(self, request: Request, viewer: Viewer) -> Response:
        owner = None if viewer.is_admin else viewer.user
        if request.method == "GET" and request.url.path.endswith("/fragment"):
            usage = await self.cached(
                f"usage/{owner}", self.scan_ttl_s,
                lambda: self.sv.catalog.query(BucketUsageQuery(owner), mode=ReadMode.LOCAL),
            )  # fmt: skip
        else:  # the page itself (after a change): fresh
            usage = await self.sv.catalog.query(BucketUsageQuery(owner), mode=ReadMode.LOCAL)
        assert isinstance(usage, tuple)
        fragment = request.url.path.endswith("/fragment")
        ctx = {"viewer": viewer, "buckets": usage, "page": "buckets"}
        return self.render(request, "_buckets.html" if fragment else "buckets.html", ctx)

    async def bucket_create(self, request: Request, viewer: Viewer) -> Response:
        fields = await self.form(request, viewer)
        name = fields.get("name", "").strip()
        await self.sv.catalog.execute(cmd.CreateBucket(name, viewer.user))
        log.info("console bucket created", bucket=name, user=viewer.user)
        return RedirectResponse(f"{PREFIX}/buckets", 303)

    async def bucket_delete(self, request: Request, viewer: Viewer) -> Response:
        fields = await self.form(request, viewer)
        name = fields.get("name", "")
        rec = await self.bucket(viewer, name)
        await self.sv.catalog.execute(cmd.DeleteBucket(name, incarnation=rec.incarnation))
        log.info("console bucket deleted", bucket=name, user=viewer.user)
        return RedirectResponse(f"{PREFIX}/buckets", 303)

    # -- bucket browser ----------------------------------------------------------------
    async def browse(self, request: Request, viewer: Viewer) -> Response:
        name = request.path_params["bucket"]
        rec = await self.bucket(viewer, name)
        prefix = request.query_params.get("prefix", "")
        token = request.query_params.get("token") or None
        page = await self.sv.catalog.query(
            ListObjectsV2Query(name, prefix=prefix, delimiter="/", continuation_token=token,
                               max_keys=200, incarnation=rec.incarnation)
        )  # fmt: skip
        assert isinstance(page, ListObjectsPage)
        crumbs: list[tuple[str, str]] = []
        acc = ""
        for part in prefix.split("/")[:-1]:
            acc += part + "/"
            crumbs.append((part, acc))
        ctx = {
            "viewer": viewer, "bucket": name, "prefix": prefix, "listing": page,
            "crumbs": crumbs, "token": token or "", "page": "buckets",
        }  # fmt: skip
        fragment = request.url.path.endswith("/fragment")
        return self.render(request, "_listing.html" if fragment else "browse.html", ctx)

    async def download(self, request: Request, viewer: Viewer) -> Response:
        name = request.path_params["bucket"]
        key = request.query_params.get("key", "")
        rec = await self.bucket(viewer, name)
        info = await self.sv.catalog.query(HeadObjectQuery(name, key, incarnation=rec.incarnation))
        assert isinstance(info, ObjectInfo)
        size = info.record.size
        filename = key.rsplit("/", 1)[-1] or "download"
        headers = {
            **_SECURITY_HEADERS,
            "content-length": str(size),
            "content-disposition": "attachment; filename*=UTF-8''"
            + urllib.parse.quote(filename, safe=""),
            "etag": f'"{info.record.etag}"',
            "content-security-policy": "sandbox",
        }
        body: AsyncIterator[BodyPiece] = self.sv.store.read(info, 0, size)
        return StreamingResponse(body, 200, headers, media_type="application/octet-stream")

    async def upload(self, request: Request, viewer: Viewer) -> Response:
        name = request.path_params["bucket"]
        key = request.query_params.get("key", "")
        if not _valid_key(key):
            raise FormError("object key must be 1-1024 bytes without control characters")
        rec = await self.bucket(viewer, name)
        length = request.headers.get("content-length")
        cap = self.sv.limits.max_object_bytes
        size_hint = int(length) if length and length.isdigit() else None
        if size_hint is not None and size_hint > cap:
            raise FormError(f"object larger than {cap} bytes", 413)
        ctype = request.headers.get("content-type", "") or "binary/octet-stream"

        async def body() -> AsyncIterator[bytes]:
            seen = 0
            async for piece in request.stream():
                seen += len(piece)
                if seen > cap:
                    raise FormError(f"object larger than {cap} bytes", 413)
                if piece:
                    yield piece
            if size_hint is not None and seen != size_hint:
                raise InvalidArgument("the body is shorter than its Content-Length")

        stored = await self.sv.store.write(body(), size_hint)
        command = cmd.CommitObject(
            bucket=name, key=key, version_id=self.sv.new_id(), owner=viewer.user,
            size=stored.size, etag=stored.md5_hex,
            headers=ObjectHeaders(content_type=ctype[:256]),
            chunks=stored.chunks, inline_data=stored.inline, incarnation=rec.incarnation,
        )  # fmt: skip
        try:
            await self.sv.catalog.execute(command)
        except BlobstoreError as exc:
            if not isinstance(exc, Unavailable):
                await self.sv.store.discard(stored)
            raise
        log.info("console upload", bucket=name, key=key, bytes=stored.size, user=viewer.user)
        return PlainTextResponse(f"stored {stored.size} bytes", 201, headers=_SECURITY_HEADERS)

    async def object_delete(self, request: Request, viewer: Viewer) -> Response:
        name = request.path_params["bucket"]
        fields = await self.form(request, viewer)
        key = fields.get("key", "")
        rec = await self.bucket(viewer, name)
        await self.sv.catalog.execute(
            cmd.DeleteObject(name, key, None, self.sv.new_id(), incarnation=rec.incarnation)
        )
        log.info("console delete", bucket=name, key=key, user=viewer.user)
        prefix = urllib.parse.quote(fields.get("prefix", ""), safe="")
        return RedirectResponse(f"{PREFIX}/b/{urllib.parse.quote(name)}?prefix={prefix}", 303)

    # -- users and keys ----------------------------------------------------------------
    async def _users_ctx(self, viewer: Viewer) -> dict[str, Any]:
        if viewer.is_admin:
            users = await self.sv.catalog.query(ListUsersQuery())
            keys = await self.sv.catalog.query(ListAccessKeysQuery(None))
        else:
            users = tuple(
                u
                for u in await self._all_users()
                if u.name == viewer.user  # own record only
            )
            keys = await self.sv.catalog.query(ListAccessKeysQuery(viewer.user))
        assert isinstance(users, tuple) and isinstance(keys, tuple)
        by_user: dict[str, list[Any]] = {}
        for k in keys:
            by_user.setdefault(k.user_name, []).append(k)
        return {"viewer": viewer, "users": users, "keys": by_user, "page": "users"}

    async def _all_users(self) -> tuple[Any, ...]:
        got = await self.sv.catalog.query(ListUsersQuery())
        assert isinstance(got, tuple)
        return got

    async def users(self, request: Request, viewer: Viewer) -> Response:
        ctx = await self._users_ctx(viewer)
        fragment = request.url.path.endswith("/fragment")
        return self.render(request, "_users.html" if fragment else "users.html", ctx)

    async def _new_key(self, user: str) -> tuple[str, str]:
        alphabet = string.ascii_uppercase + string.digits
        access_key = "BK" + "".join(secrets.choice(alphabet) for _ in range(18))
        secret = secrets.token_urlsafe(30)
        await self.sv.catalog.execute(cmd.PutAccessKey(access_key, secret, user))
        return access_key, secret

    async def user_create(self, request: Request, viewer: Viewer) -> Response:
        fields = await self.form(request, viewer)
        name = fields.get("name", "").strip()
        if not _USER_NAME.match(name):
            raise FormError("user names are 1-64 letters, digits or _.@+=,-")
        if any(u.name == name for u in await self._all_users()):
            raise FormError(f"user {name!r} already exists", 409)
        await self.sv.catalog.execute(cmd.PutUser(name, is_admin=fields.get("admin") == "on"))
        access_key, secret = await self._new_key(name)
        log.info("console user created", name=name, by=viewer.user)
        ctx = await self._users_ctx(viewer)
        ctx["created"] = {"user": name, "access_key": access_key, "secret": secret}
        return self.render(request, "users.html", ctx, 201)

    async def user_delete(self, request: Request, viewer: Viewer) -> Response:
        fields = await self.form(request, viewer)
        name = fields.get("name", "")
        if name == viewer.user:
            raise FormError("you cannot delete the user you are logged in as", 409)
        await self.sv.catalog.execute(cmd.DeleteUser(name))
        self.auth.forget()
        log.info("console user deleted", name=name, by=viewer.user)
        return RedirectResponse(f"{PREFIX}/users", 303)

    async def key_create(self, request: Request, viewer: Viewer) -> Response:
        fields = await self.form(request, viewer)
        user = fields.get("user", "") or viewer.user
        if user != viewer.user and not viewer.is_admin:
            raise AccessDenied("you can only add keys to your own user")
        access_key, secret = await self._new_key(user)
        log.info("console key created", user=user, access_key=access_key, by=viewer.user)
        ctx = await self._users_ctx(viewer)
        ctx["created"] = {"user": user, "access_key": access_key, "secret": secret}
        return self.render(request, "users.html", ctx, 201)

    async def key_delete(self, request: Request, viewer: Viewer) -> Response:
        fields = await self.form(request, viewer)
        key_id = fields.get("access_key", "")
        if not viewer.is_admin:
            own = await self.sv.catalog.query(ListAccessKeysQuery(viewer.user))
            assert isinstance(own, tuple)
            if key_id not in {k.access_key_id for k in own}:
                raise AccessDenied("you can only delete your own keys")
        await self.sv.catalog.execute(cmd.DeleteAccessKey(key_id))
        self.auth.forget(key_id)
        log.info("console key deleted", access_key=key_id, by=viewer.user)
        return RedirectResponse(f"{PREFIX}/users", 303)


def build_console(
    services: Services, auth: ConsoleAuth, probe: ClusterProbe, *, scan_ttl_s: float = 4.0
) -> Starlette:
    """The console as a Starlette app whose routes all live under ``/_console``.

    ``scan_ttl_s``: how long the results of O(catalog) scans (redundancy, bucket usage)
    are shared between polls."""
    c = _Console(services, auth, probe, scan_ttl_s)
    page = c.page

    def cluster_route(name: str) -> list[Route]:
        async def view(request: Request, viewer: Viewer) -> Response:
            return await c.cluster(request, viewer, name)

        h = page(admin=True)(view)
        return [Route(f"/{name}", h), Route(f"/{name}/fragment", h)]

    routes = [
        Route("/login", c.login_get, methods=["GET"]),
        Route("/login", c.login_post, methods=["POST"]),
        Route("/logout", page()(c.logout), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/", page()(c.home)),
        *cluster_route("cluster"),
        *cluster_route("capacity"),
        *cluster_route("redundancy"),
        Route("/buckets", page()(c.buckets), methods=["GET"]),
        Route("/buckets/fragment", page()(c.buckets)),
        Route("/buckets", page(mutation=True)(c.bucket_create), methods=["POST"]),
        Route("/buckets/delete", page(mutation=True)(c.bucket_delete), methods=["POST"]),
        Route("/b/{bucket}", page()(c.browse)),
        Route("/b/{bucket}/fragment", page()(c.browse)),
        Route("/b/{bucket}/object", page()(c.download), methods=["GET"]),
        Route("/b/{bucket}/object", page(mutation=True)(c.upload), methods=["PUT"]),
        Route("/b/{bucket}/delete", page(mutation=True)(c.object_delete), methods=["POST"]),
        Route("/users", page()(c.users), methods=["GET"]),
        Route("/users/fragment", page()(c.users)),
        Route("/users", page(admin=True, mutation=True)(c.user_create), methods=["POST"]),
        Route("/users/delete", page(admin=True, mutation=True)(c.user_delete), methods=["POST"]),
        Route("/keys", page(mutation=True)(c.key_create), methods=["POST"]),
        Route("/keys/delete", page(mutation=True)(c.key_delete), methods=["POST"]),
    ]
    return Starlette(routes=[Mount(PREFIX, routes=routes)])
