"""Per-gateway services and per-request state shared by the S3 handlers.

``Services`` bundles what every handler may use (catalog client, object store, limits,
region, clock, id generation). ``Services.object_bucket`` is the access check of the
object-level paths (object reads and writes, listings, multipart): it answers from a
per-process cache of bucket records for ``bucket_ttl_s`` (1 s), saving one catalog read
per request. A cached record may be stale: the bucket may have been deleted and
re-created since, possibly by another user. So every catalog call made on the strength of
a bucket record names that record's ``incarnation`` (a number the catalog never hands out
twice, see ``metadata.fsm.records.BucketRecord``) and the catalog answers NoSuchBucket when
the bucket is now another incarnation. ``Services.in_bucket`` runs such a call: on
NoSuchBucket it drops the cache entry, re-reads the bucket, checks access again (a
replaced bucket of another owner: AccessDenied) and, for a new incarnation the principal
may use, runs the call once more. A stale cache therefore costs at most one extra catalog
read, never access to another owner's bucket.
Bucket-level operations always read the catalog (``Services.bucket``) and also name the
incarnation in their commands.

``RequestContext`` is one authenticated request: its parsed headers, the SigV4 context,
the principal, and the raw ASGI body channel. Bodies are read ONLY through
``body_stream`` (streaming, verified by ``gateway.chunked.VerifiedBody``, size-capped)
or ``read_small_body`` (XML documents, capped); both raise on any mismatch, so a handler
that commits after them never commits unverified bytes.

Also the response helpers (``make_response``...) that set exact headers and lengths.

Must not import the handlers or the app.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.responses import Response

from blobstore.client.catalog import CatalogClient
from blobstore.errors import AccessDenied, NoSuchBucket
from gateway.auth import Principal, authorize_bucket
from gateway.checksums import Checksum, ChecksumAlgorithm
from gateway.chunked import VerifiedBody
from gateway.errors import S3Error
from gateway.router import Headers, RouterLimits
from gateway.sigv4 import AuthContext, IncompleteBody, RequestParts
from gateway.storage import BodyPiece, ObjectStore
from metadata import api
from metadata.fsm import commands as cmd
from metadata.fsm.records import BucketRecord

__all__ = [
    "BodyCounter",
    "BodyStreamResponse",
    "RequestContext",
    "Scoped",
    "ScopedQuery",
    "Services",
    "body_stream",
    "make_response",
    "read_small_body",
    "receive_body",
    "streaming_response",
    "xml_response",
]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
T = TypeVar("T")
# catalog calls that name a bucket incarnation (``incarnation`` is their last field)
Scoped = (
    cmd.CommitObject
    | cmd.CopyObject
    | cmd.DeleteObject
    | cmd.DeleteObjects
    | cmd.PutObjectTagging
    | cmd.CreateMultipartUpload
    | cmd.CommitPart
    | cmd.CompleteMultipartUpload
    | cmd.AbortMultipartUpload
)
ScopedQuery = (
    api.HeadObjectQuery
    | api.ListObjectsQuery
    | api.ListObjectsV2Query
    | api.ListObjectVersionsQuery
    | api.ListMultipartUploadsQuery
    | api.ListPartsQuery
)

_MAX_CACHED_BUCKETS = 10_000


@dataclass(slots=True)
class Services:
    """What the handlers share for the life of the gateway."""

    catalog: CatalogClient
    store: ObjectStore
    region: str = "us-east-1"
    limits: RouterLimits = field(default_factory=RouterLimits)
    wall_clock: Callable[[], float] = time.time
    bucket_ttl_s: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, BucketRecord]] = field(default_factory=dict)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_clock(), UTC)

    @staticmethod
    def new_id() -> str:
        """A fresh id for versions and uploads (time-ordered prefix, random suffix)."""
        return f"{time.time_ns():x}{secrets.token_hex(8)}"

    async def bucket(self, ctx: RequestContext, name: str) -> BucketRecord:
        """The bucket (NoSuchBucket) if ``ctx``'s principal may use it (AccessDenied)."""
        rec = await self.catalog.query(api.GetBucketQuery(name))
        assert isinstance(rec, BucketRecord)
        self._remember(rec)  # whoever asks: every cache hit is authorised again
        return _authorized(ctx, rec)

    def _remember(self, rec: BucketRecord) -> None:
        if len(self._buckets) >= _MAX_CACHED_BUCKETS:
            self._buckets.clear()
        self._buckets[rec.name] = (self.monotonic() + self.bucket_ttl_s, rec)

    def forget_bucket(self, name: str) -> None:
        """Drop a cached bucket record (after DeleteBucket, or NoSuchBucket below)."""
        self._buckets.pop(name, None)

    def cached_bucket(self, ctx: RequestContext, name: str) -> BucketRecord | None:
        """The cached record of ``name`` if fresh and ``ctx`` may use it, else None."""
        hit = self._buckets.get(name)
        if hit is None or hit[0] <= self.monotonic():
            return None
        return _authorized(ctx, hit[1])

    async def object_bucket(self, ctx: RequestContext, name: str) -> BucketRecord:
        """``bucket`` for object-level requests, answered from the cache when fresh (the
        record may be stale: pass its ``incarnation`` to the catalog, see ``in_bucket``)."""
        return self.cached_bucket(ctx, name) or await self.bucket(ctx, name)

    async def in_bucket(
        self,
        ctx: RequestContext,
        rec: BucketRecord,
        call: Callable[[BucketRecord], Awaitable[T]],
    ) -> T:
        """``call(rec)``: a catalog call naming ``rec.incarnation``. If the catalog answers
        NoSuchBucket for ``rec``'s bucket, the cached record was stale or the bucket is
        gone: drop it, read the bucket again (NoSuchBucket, or AccessDenied if ``ctx``'s
        principal may not use the bucket now there) and, if it is a new incarnation, run
        ``call`` once more on it. A NoSuchBucket about another bucket (a copy source)
        drops that bucket's cache entry and is raised."""
        try:
            return await call(rec)
        except NoSuchBucket as exc:
            named = exc.details.get("bucket", rec.name)
            self.forget_bucket(named)
            if named != rec.name:
                raise
            fresh = await self.bucket(ctx, rec.name)
            if fresh.incarnation == rec.incarnation:
                raise
        try:
            return await call(fresh)
        except NoSuchBucket as exc:
            self.forget_bucket(exc.details.get("bucket", rec.name))
            raise

    async def execute_in(self, ctx: RequestContext, rec: BucketRecord, command: Scoped) -> object:
        """Execute ``command`` naming ``rec``'s incarnation (see ``in_bucket``)."""

        async def run(b: BucketRecord) -> object:
            return await self.catalog.execute(replace(command, incarnation=b.incarnation))

        return await self.in_bucket(ctx, rec, run)

    async def query_in(self, ctx: RequestContext, rec: BucketRecord, q: ScopedQuery) -> object:
        """Answer ``q`` naming ``rec``'s incarnation (see ``in_bucket``)."""

        async def run(b: BucketRecord) -> object:
            return await self.catalog.query(replace(q, incarnation=b.incarnation))

        return await self.in_bucket(ctx, rec, run)


def _authorized(ctx: RequestContext, rec: BucketRecord) -> BucketRecord:
    """``rec`` if ``ctx``'s principal may use the bucket (else AccessDenied)."""
    if ctx.principal is None:
        raise AccessDenied("Anonymous access is not allowed")
    authorize_bucket(ctx.principal, rec)
    return rec


@dataclass(slots=True)
class RequestContext:
    """One request as the handlers see it."""

    request_id: str
    method: str
    raw_path: bytes
    headers: Headers
    parts: RequestParts
    receive: Receive
    host: str
    scheme: str = "http"
    auth: AuthContext | None = None
    principal: Principal | None = None
    body_done: bool = False  # the ASGI body was received to its end

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length")
        if length is not None:
            return length.strip() not in ("", "0")
        return "chunked" in (self.headers.get("transfer-encoding") or "").lower()

    @property
    def owner(self) -> str:
        if self.principal is None:
            raise AccessDenied("Anonymous access is not allowed")
        return self.principal.user


async def receive_body(ctx: RequestContext) -> AsyncIterator[bytes]:
    """The raw request body from the ASGI channel (sends 100-continue on first read)."""
    while True:
        message = await ctx.receive()
        kind = message.get("type")
        if kind == "http.request":
            body = message.get("body", b"")
            if body:
                yield bytes(body)
            if not message.get("more_body", False):
                ctx.body_done = True
                return
        elif kind == "http.disconnect":
            raise IncompleteBody("The client disconnected before sending the whole body")


class BodyCounter:
    """Wraps a decoded body: enforces a byte cap and records that it ran to its end.

    It has ONE underlying iterator (``aiter`` always returns it), so ``drain`` resumes the
    very iteration a consumer stopped, and the final checks of ``VerifiedBody`` (trailing
    checksum, payload hash, lengths) run exactly once."""

    __slots__ = ("_cap", "_it", "_source", "finished", "size_bytes")

    def __init__(self, source: VerifiedBody, cap_bytes: int) -> None:
        self._source = source
        self._cap = cap_bytes
        self._it: AsyncIterator[bytes] | None = None
        self.size_bytes = 0
        self.finished = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._it is None:
            self._it = self._run()
        return self._it

    async def _run(self) -> AsyncIterator[bytes]:
        async for piece in self._source:
            self.size_bytes += len(piece)
            if self.size_bytes > self._cap:
                raise S3Error.entity_too_large(self.size_bytes, self._cap)
            yield piece
        self.finished = True

    async def drain(self) -> None:
        """Run the body to its end if the consumer stopped early (extra bytes: error)."""
        if self.finished:
            return
        async for _piece in aiter(self):
            raise IncompleteBody("The request body is longer than declared")

    @property
    def checksums(self) -> tuple[Checksum, ...]:
        return self._source.checksums

    @property
    def algorithms(self) -> frozenset[ChecksumAlgorithm]:
        """The algorithms ``checksums`` will hold once the body ran to its end."""
        return self._source.algorithms


def body_stream(
    ctx: RequestContext, cap_bytes: int, compute: Iterable[ChecksumAlgorithm] = ()
) -> BodyCounter:
    """The verified, decoded request body as a stream (consume it exactly once)."""
    if ctx.auth is None:
        raise AccessDenied("Anonymous access is not allowed")
    verified = VerifiedBody(receive_body(ctx), ctx.auth, ctx.parts, compute=compute)
    return BodyCounter(verified, cap_bytes)


async def read_small_body(ctx: RequestContext, cap_bytes: int = 8 * 1024 * 1024) -> bytes:
    """The whole verified body of a small request (XML documents); capped."""
    stream = body_stream(ctx, cap_bytes)
    pieces = [piece async for piece in stream]
    return b"".join(pieces)


# -- responses ----------------------------------------------------------------------------
def _raw(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers]


def make_response(
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    content_type: str | None = None,
    content_length: int | None = None,
) -> Response:
    """A complete response; ``content_length`` overrides ``len(body)`` (HEAD)."""
    response = Response(content=body, status_code=status)
    raw = _raw(headers)
    if content_type is not None:
        raw.append((b"content-type", content_type.encode("latin-1")))
    if status >= 200 and status not in (204, 304):
        size = len(body) if content_length is None else content_length
        raw.append((b"content-length", str(size).encode("ascii")))
    response.raw_headers = raw
    return response


def xml_response(
    body: bytes, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    return make_response(status, headers, body, content_type="application/xml")


class BodyStreamResponse(Response):
    """Streams an async iterator of bytes or views (fixed Content-Length) to ``send``.

    Starlette's ``StreamingResponse`` runs every response in an anyio task group (a task
    to stream, one to listen for a disconnect, cancel scopes) -- measurable per GET.
    Here the body is sent from the request's own task; a single watcher task on
    ``receive`` notices a client that went away, and the source is then closed at the
    next block instead of being read to its end for nobody.
    """

    def __init__(
        self,
        status: int,
        raw_headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[BodyPiece],
    ) -> None:
        self.status_code = status
        self.raw_headers = raw_headers
        self.body_iterator = body
        self.background = None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Receive,
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        body = self.body_iterator
        watcher: asyncio.Task[None] | None = None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in body:
                if watcher is None:
                    watcher = asyncio.ensure_future(_wait_disconnect(receive))
                elif watcher.done():
                    return  # the client is gone: stop reading the object
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if watcher is not None:
                watcher.cancel()
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive()).get("type") != "http.disconnect":
        pass


def streaming_response(
    status: int,
    headers: Iterable[tuple[str, str]],
    body: AsyncIterator[BodyPiece],
    length: int,
) -> Response:
    raw = _raw(headers)
    raw.append((b"content-length", str(length).encode("ascii")))
    return BodyStreamResponse(status, raw, body)
