"""aws-chunked body decoding (server) and encoding (client/tests), streaming and bounded.

Owns the ``Content-Encoding: aws-chunked`` framing that S3 clients use when
``x-amz-content-sha256`` is one of the STREAMING-* values (the HTTP layer has already
removed ``Transfer-Encoding: chunked``), and ``VerifiedBody``: the one entry point the
request handlers use to read a payload of ANY mode (plain sha256-signed, unsigned or
aws-chunked) decoded and verified, with Content-MD5 / x-amz-checksum-* headers checked and
the MD5 (ETag) and other checksums computed in the same pass. Byte layout::

    body     = *chunk last-chunk trailers CRLF
    chunk    = hex-size [";chunk-signature=" sig] CRLF data CRLF     (hex-size > 0)
    last     = "0" [";chunk-signature=" sig] CRLF
    trailers = *(name ":" value CRLF) ["x-amz-trailer-signature:" sig CRLF]

Signatures (hex HMAC-SHA256 with the request's signing key, see ``gateway.sigv4``)::

    chunk    "AWS4-HMAC-SHA256-PAYLOAD\\n" date "\\n" scope "\\n" prev "\\n" sha256("") "\\n"
             sha256(data)                         prev = seed signature, then each chunk's
    trailer  "AWS4-HMAC-SHA256-TRAILER\\n" date "\\n" scope "\\n" prev "\\n"
             sha256("name:value\\n" for each trailer)      prev = the last chunk's signature

Invariants:
- Memory is bounded: at most one chunk (``max_chunk_size_bytes``, default 16 MiB) plus one
  input piece is buffered; signed chunks are verified BEFORE their data is yielded;
  unsigned chunk data is yielded as it arrives.
- Errors are typed (IncompleteBody for truncation or a length mismatch, InvalidRequest for
  malformed framing, SignatureDoesNotMatch, BadDigest for a wrong trailing checksum) and
  raised only when the offending bytes are reached, so earlier data may already have been
  yielded. CALLERS MUST COMMIT ONLY AFTER THE ITERATOR FINISHES WITHOUT AN EXCEPTION (the
  trailing checksum and length checks run after the last data is yielded); the store path
  aborts the upload on any exception.
- Hashing of chunks >= ``offload_threshold_bytes`` (256 KiB) runs in ``asyncio.to_thread``.

Imports: stdlib, ``blobstore.errors``, ``gateway.sigv4``, ``gateway.checksums``. No starlette.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass

from blobstore.errors import BadDigest, InvalidArgument
from gateway.checksums import (
    Checksum,
    ChecksumAlgorithm,
    Checksummer,
    expected_checksums,
    verify_checksums,
)
from gateway.sigv4 import (
    EMPTY_SHA256,
    AuthContext,
    IncompleteBody,
    InvalidRequest,
    PayloadMode,
    RequestParts,
    SignatureDoesNotMatch,
    chunk_signature,
    trailer_signature,
)

__all__ = [
    "DEFAULT_MAX_CHUNK_SIZE_BYTES",
    "AwsChunkedDecoder",
    "ChunkSigningContext",
    "Trailer",
    "VerifiedBody",
    "encode_aws_chunked",
    "parse_trailer_names",
]

DEFAULT_MAX_CHUNK_SIZE_BYTES = 16 * 1024 * 1024
OFFLOAD_THRESHOLD_BYTES = 256 * 1024
_MAX_LINE_BYTES = 4096
_MAX_TRAILERS = 16
_SIGNATURE_TRAILER = "x-amz-trailer-signature"
_INCOMPLETE = "You did not provide the number of bytes specified by the Content-Length HTTP header"


@dataclass(frozen=True, slots=True)
class ChunkSigningContext:
    """What chunk/trailer signatures are computed from (all from the request signature)."""

    signing_key: bytes
    amz_date: str
    scope: str
    seed_signature: str

    @classmethod
    def from_auth(cls, auth: AuthContext) -> ChunkSigningContext:
        return cls(auth.signing_key, auth.amz_date, auth.scope, auth.seed_signature)


@dataclass(frozen=True, slots=True)
class Trailer:
    """One trailing header (name lower-case)."""

    name: str
    value: str


def parse_trailer_names(value: str | None) -> tuple[str, ...]:
    """The names listed in ``x-amz-trailer`` (comma-separated), lower-cased."""
    if not value:
        return ()
    return tuple(n.strip().lower() for n in value.split(",") if n.strip())


class _Reader:
    """Line/byte reader over an async iterator of arbitrary-sized pieces."""

    __slots__ = ("_buf", "_eof", "_it")

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._it = source.__aiter__()
        self._buf = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        while not self._eof:
            try:
                piece = await self._it.__anext__()
            except StopAsyncIteration:
                self._eof = True
                return False
            if piece:
                self._buf += piece
                return True
        return False

    async def readline(self) -> bytes | None:
        """One line without its CRLF (or bare LF); None at EOF with nothing buffered."""
        searched = 0
        while True:
            idx = self._buf.find(b"\n", searched)
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > _MAX_LINE_BYTES:
                raise InvalidRequest("aws-chunked framing line is too long")
            searched = len(self._buf)
            if not await self._fill():
                if not self._buf:
                    return None
                raise IncompleteBody(_INCOMPLETE)

    async def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not await self._fill():
                raise IncompleteBody(_INCOMPLETE)
        with memoryview(self._buf) as view, view[:n] as head:
            data = bytes(head)
        del self._buf[:n]
        return data

    async def read_some(self, n: int) -> bytes:
        """Between 1 and n bytes (n > 0)."""
        if not self._buf and not await self._fill():
            raise IncompleteBody(_INCOMPLETE)
        take = min(n, len(self._buf))
        with memoryview(self._buf) as view, view[:take] as head:
            data = bytes(head)
        del self._buf[:take]
        return data

    async def at_eof(self) -> bool:
        return not self._buf and not await self._fill()


class AwsChunkedDecoder:
    """Async iterator of the decoded payload of an aws-chunked body.

    After iteration completes without error: ``decoded_size_bytes``, ``trailers`` and
    ``checksums`` (trailing checksums, already verified) are final.
    """

    def __init__(
        self,
        source: AsyncIterable[bytes],
        mode: PayloadMode,
        *,
        signing: ChunkSigningContext | None = None,
        decoded_content_length: int | None = None,
        trailer_names: Sequence[str] = (),
        max_chunk_size_bytes: int = DEFAULT_MAX_CHUNK_SIZE_BYTES,
        offload_threshold_bytes: int = OFFLOAD_THRESHOLD_BYTES,
    ) -> None:
        if not mode.is_aws_chunked:
            raise ValueError(f"{mode} is not an aws-chunked payload mode")
        if mode.has_chunk_signatures and signing is None:
            raise ValueError("signed aws-chunked decoding needs a ChunkSigningContext")
        self._reader = _Reader(source)
        self._mode = mode
        self._signing = signing
        self._expected_len = decoded_content_length
        self._trailer_names = tuple(n.lower() for n in trailer_names)
        algs = [
            ChecksumAlgorithm.from_name(n)
            for n in self._trailer_names
            if n.startswith("x-amz-checksum-")
        ]
        self._checksummer = Checksummer(algs) if algs else None
        self._max_chunk = max_chunk_size_bytes
        self._offload = offload_threshold_bytes
        self._prev_sig = signing.seed_signature if signing is not None else ""
        self.decoded_size_bytes = 0
        self.trailers: tuple[Trailer, ...] = ()
        self.checksums: tuple[Checksum, ...] = ()
        self._started = False

    @classmethod
    def for_request(
        cls,
        source: AsyncIterable[bytes],
        auth: AuthContext,
        req: RequestParts,
        *,
        max_chunk_size_bytes: int = DEFAULT_MAX_CHUNK_SIZE_BYTES,
    ) -> AwsChunkedDecoder:
        """A decoder configured from the verified auth context and the request headers."""
        length_text = req.header("x-amz-decoded-content-length")
        length: int | None = None
        if length_text is not None:
            if not length_text.strip().isdigit():
                raise InvalidArgument(
                    "x-amz-decoded-content-length is not a number",
                    ArgumentName="x-amz-decoded-content-length",
                    ArgumentValue=length_text,
                )
            length = int(length_text)
        return cls(
            source,
            auth.payload_mode,
            signing=ChunkSigningContext.from_auth(auth),
            decoded_content_length=length,
            trailer_names=parse_trailer_names(req.header("x-amz-trailer")),
            max_chunk_size_bytes=max_chunk_size_bytes,
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("an AwsChunkedDecoder can be iterated only once")
        self._started = True
        return self._decode()

    # -- framing --------------------------------------------------------------------------
    async def _decode(self) -> AsyncIterator[bytes]:
        signed = self._mode.has_chunk_signatures
        while True:
            size, sig = await self._chunk_header()
            if size == 0:
                if signed:
                    self._check_chunk_signature(sig, EMPTY_SHA256)
                break
            self._account(size)
            if signed:
                data = await self._reader.read_exact(size)
                digest = await self._digest(data)
                self._check_chunk_signature(sig, digest)
                yield data
            else:
                remaining = size
                while remaining:
                    piece = await self._reader.read_some(remaining)
                    remaining -= len(piece)
                    await self._digest(piece)
                    yield piece
            if await self._reader.read_exact(2) != b"\r\n":
                raise InvalidRequest("aws-chunked chunk data is not followed by CRLF")
        if self._expected_len is not None and self.decoded_size_bytes != self._expected_len:
            raise IncompleteBody(_INCOMPLETE)
        await self._read_trailers()

    async def _chunk_header(self) -> tuple[int, str | None]:
        line = await self._reader.readline()
        if line is None:
            raise IncompleteBody(_INCOMPLETE)
        size_text, _, ext = line.partition(b";")
        size_text = size_text.strip()
        if (
            not size_text
            or len(size_text) > 16
            or not all(c in b"0123456789abcdefABCDEF" for c in size_text)
        ):
            raise InvalidRequest("malformed aws-chunked chunk size")
        size = int(size_text, 16)
        if size > self._max_chunk:
            raise InvalidRequest(f"aws-chunked chunk of {size} bytes exceeds the limit")
        sig: str | None = None
        for item in ext.split(b";"):
            name, _, value = item.strip().partition(b"=")
            if name == b"chunk-signature":
                sig = value.strip().decode("latin-1")
        return size, sig

    def _account(self, size: int) -> None:
        self.decoded_size_bytes += size
        if self._expected_len is not None and self.decoded_size_bytes > self._expected_len:
            raise IncompleteBody(_INCOMPLETE)

    async def _digest(self, data: bytes) -> str:
        """Feed the trailing checksum; return the chunk's sha256 hex in signed mode."""
        if len(data) >= self._offload:
            return await asyncio.to_thread(self._digest_sync, data)
        return self._digest_sync(data)

    def _digest_sync(self, data: bytes) -> str:
        if self._checksummer is not None:
            self._checksummer.update(data)
        if self._mode.has_chunk_signatures:
            return hashlib.sha256(data).hexdigest()
        return ""

    def _check_chunk_signature(self, given: str | None, data_sha256: str) -> None:
        assert self._signing is not None
        s = self._signing
        expected = chunk_signature(s.signing_key, s.amz_date, s.scope, self._prev_sig, data_sha256)
        if given is None or not hmac.compare_digest(
            expected.encode("ascii"), given.encode("utf-8", "replace")
        ):
            raise SignatureDoesNotMatch(
                "The request signature we calculated does not match the signature you "
                "provided (aws-chunked chunk signature).",
                SignatureProvided=given or "",
            )
        self._prev_sig = expected

    async def _read_trailers(self) -> None:
        trailers: list[Trailer] = []
        signature: str | None = None
        while True:
            line = await self._reader.readline()
            if line is None or line == b"":
                break
            if len(trailers) >= _MAX_TRAILERS:
                raise InvalidRequest("too many aws-chunked trailers")
            name, sep, value = line.partition(b":")
            if not sep:
                raise InvalidRequest(
                    "The request contained trailing data that was not "
                    "well-formed or did not conform to our published schema."
                )
            trailer = Trailer(
                name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")
            )
            if trailer.name == _SIGNATURE_TRAILER:
                signature = trailer.value
            else:
                trailers.append(trailer)
        if line is not None and not await self._reader.at_eof():
            raise InvalidRequest("unexpected data after the end of the aws-chunked body")
        self.trailers = tuple(trailers)
        self._check_trailers(signature)

    def _check_trailers(self, signature: str | None) -> None:
        present = {t.name for t in self.trailers}
        if not self._mode.has_trailer:
            if self.trailers:
                raise InvalidRequest("trailing headers sent without a trailer payload mode")
            return
        for name in self._trailer_names:
            if name not in present:
                raise IncompleteBody(f"The trailing header {name} was declared but not sent")
        if self._mode is PayloadMode.STREAMING_SIGNED_TRAILER:
            assert self._signing is not None
            s = self._signing
            canonical = b"".join(f"{t.name}:{t.value}\n".encode("latin-1") for t in self.trailers)
            expected = trailer_signature(
                s.signing_key, s.amz_date, s.scope, self._prev_sig, canonical
            )
            if signature is None or not hmac.compare_digest(
                expected.encode("ascii"), signature.encode("utf-8", "replace")
            ):
                raise SignatureDoesNotMatch(
                    "The request signature we calculated does not match the signature you "
                    "provided (aws-chunked trailer signature).",
                    SignatureProvided=signature or "",
                )
        verified: list[Checksum] = []
        for t in self.trailers:
            if not t.name.startswith("x-amz-checksum-"):
                continue
            alg = ChecksumAlgorithm.from_name(t.name)
            if self._checksummer is None or alg not in self._checksummer.algorithms:
                raise InvalidRequest(
                    f"The trailing header {t.name} was not declared in x-amz-trailer"
                )
            want = Checksum.from_b64(alg, t.value)
            got = self._checksummer.digest(alg)
            if got.digest != want.digest:
                raise BadDigest(
                    f"The {alg.value.upper()} you specified did not match the calculated checksum.",
                    expected=want.b64,
                    calculated=got.b64,
                )
            verified.append(want)
        self.checksums = tuple(verified)


class VerifiedBody:
    """The request payload for any payload mode, decoded and verified while it streams.

    Checks, in order of the bytes: the announced hex sha256 (SHA256 mode), aws-chunked
    framing, chunk/trailer signatures and trailing checksum (STREAMING-* modes), then the
    checksums announced in headers (Content-MD5, x-amz-checksum-<alg>). ``checksums`` holds
    every algorithm in ``compute``, the header-announced ones and the verified trailing
    ones, over the decoded payload, once iteration has finished. The same rule applies:
    commit only after iteration completed without an exception.
    """

    def __init__(
        self,
        source: AsyncIterable[bytes],
        auth: AuthContext,
        req: RequestParts,
        *,
        compute: Iterable[ChecksumAlgorithm] = (ChecksumAlgorithm.MD5,),
        max_chunk_size_bytes: int = DEFAULT_MAX_CHUNK_SIZE_BYTES,
        offload_threshold_bytes: int = OFFLOAD_THRESHOLD_BYTES,
    ) -> None:
        self._expected = expected_checksums((k, v.decode("latin-1")) for k, v in req.headers)
        algs = [*compute, *(c.algorithm for c in self._expected)]
        self.algorithms = frozenset(algs)  # what ``checksums`` will hold
        self._summer = Checksummer(algs)
        self._payload = auth.payload_verifier()
        self._offload = offload_threshold_bytes
        self._source: AsyncIterable[bytes] = source
        self.decoder: AwsChunkedDecoder | None = None
        if auth.payload_mode.is_aws_chunked:
            self.decoder = AwsChunkedDecoder.for_request(
                source, auth, req, max_chunk_size_bytes=max_chunk_size_bytes
            )
            self._source = self.decoder
        self.size_bytes = 0
        self.checksums: tuple[Checksum, ...] = ()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    def _update_all(self, batch: Sequence[bytes]) -> None:
        for data in batch:
            self._summer.update(data)
            if self._payload is not None:
                self._payload.update(data)

    async def _hash(self, batch: Sequence[bytes], size: int) -> None:
        if size >= self._offload:
            await asyncio.to_thread(self._update_all, batch)
        else:
            self._update_all(batch)
        self.size_bytes += size

    async def _run(self) -> AsyncIterator[bytes]:
        # Pieces are hashed in batches of >= offload_threshold_bytes in a worker thread
        # (md5/sha/crc32 release the GIL), then yielded unchanged: no copy, and the loop
        # stays free. Memory: one batch plus whatever the decoder holds.
        batch: list[bytes] = []
        pending = 0
        async for piece in self._source:
            if not piece:
                continue
            batch.append(piece)
            pending += len(piece)
            if pending >= self._offload:
                await self._hash(batch, pending)
                for data in batch:
                    yield data
                batch, pending = [], 0
        if batch:
            await self._hash(batch, pending)
            for data in batch:
                yield data
        if self._payload is not None:
            self._payload.finish()
        verify_checksums(self._expected, self._summer)
        computed = self._summer.digests()
        have = {c.algorithm for c in computed}
        trailing = self.decoder.checksums if self.decoder is not None else ()
        self.checksums = computed + tuple(c for c in trailing if c.algorithm not in have)


# -- encoding (client side) ---------------------------------------------------------------
def encode_aws_chunked(
    chunks: Iterable[bytes],
    *,
    signing: ChunkSigningContext | None = None,
    trailer_checksum: ChecksumAlgorithm | None = None,
) -> Iterator[bytes]:
    """Frame ``chunks`` (each non-empty item is one aws chunk) as an aws-chunked body.

    ``signing`` given: chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]).
    ``trailer_checksum`` given: an ``x-amz-checksum-<alg>`` trailer (signed when signing).
    """
    prev = signing.seed_signature if signing is not None else ""
    summer = Checksummer([trailer_checksum]) if trailer_checksum is not None else None

    def ext(data: bytes) -> bytes:
        nonlocal prev
        if signing is None:
            return b""
        prev = chunk_signature(
            signing.signing_key,
            signing.amz_date,
            signing.scope,
            prev,
            hashlib.sha256(data).hexdigest(),
        )
        return b";chunk-signature=" + prev.encode("ascii")

    for data in chunks:
        if not data:
            continue
        if summer is not None:
            summer.update(data)
        yield b"%x%s\r\n" % (len(data), ext(data)) + data + b"\r\n"
    last = b"0" + ext(b"") + b"\r\n"
    if summer is None or trailer_checksum is None:
        yield last + b"\r\n"
        return
    name = trailer_checksum.header_name
    line = f"{name}:{summer.digest(trailer_checksum).b64}"
    out = last + line.encode("ascii") + b"\r\n"
    if signing is not None:
        sig = trailer_signature(
            signing.signing_key,
            signing.amz_date,
            signing.scope,
            prev,
            (line + "\n").encode("ascii"),
        )
        out += f"{_SIGNATURE_TRAILER}:{sig}\r\n".encode("ascii")
    yield out + b"\r\n"
