"""The transfer engine: parallel multipart uploads (resumable), ranged parallel downloads,
server-side copies and stdin/stdout streaming, on top of one thread-safe botocore S3 client.

Invariants:
* at most ``concurrency`` part requests run at once (one shared part pool), and part data
  is read inside the part task, so memory stays about ``concurrency * part_size``;
* every part is retried up to ``attempts`` times with exponential backoff and jitter
  (injected ``random.Random``) on transport errors, 5xx, 408/429 and ETag mismatches;
* uploaded parts and single PUTs carry Content-MD5 and their returned ETag must equal the
  MD5 of the bytes sent; downloads are checked against plain-MD5 ETags (and multipart
  ETags when the part size can be inferred) before they replace the destination;
* an interrupted file upload leaves its multipart upload and a state file (see
  ``resume.py``); the next run with the same file, size and mtime reuses the parts whose
  ETag matches the local bytes and uploads only the rest;
* downloads go to a temporary file next to the destination, renamed into place when
  complete, with the local mtime set to the object's ``LastModified``.

Test hook: ``BLOBSTORE_CLI_FAIL_AFTER_PARTS=N`` makes the process exit (status 130, as if
interrupted) right after its N-th uploaded part, so resume is testable deterministically.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import mimetypes
import os
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from blobstore.cli.progress import Progress
from blobstore.cli.resume import (
    ListedPart,
    PartRange,
    UploadState,
    ceil_div,
    load_state,
    plan_parts,
    plan_resume,
    remove_state,
    save_state,
    state_path,
)

__all__ = [
    "EtagMismatch",
    "TransferConfig",
    "TransferResult",
    "Transfers",
    "is_retryable",
    "local_etag",
]

MiB = 1024 * 1024
_CHUNK = 1 * MiB
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_MULTI_RE = re.compile(r"^[0-9a-f]{32}-(\d+)$")
T = TypeVar("T")


class EtagMismatch(Exception):
    """The server's ETag does not match the bytes sent or received."""


@dataclass(frozen=True, slots=True)
class TransferConfig:
    part_size: int = 8 * MiB
    concurrency: int = 8
    attempts: int = 4
    backoff_s: float = 0.25
    resume: bool = True
    state_dir: Path | None = None
    fail_after_parts: int | None = None


@dataclass(frozen=True, slots=True)
class TransferResult:
    size: int
    etag: str = ""
    parts_uploaded: int = 0
    parts_reused: int = 0
    multipart: bool = False
    verified: bool = True  # downloads: the bytes matched the ETag


def is_retryable(exc: BaseException) -> bool:
    """Transport errors, throttling, 5xx and ETag mismatches are worth another attempt."""
    if isinstance(exc, EtagMismatch):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(response.get("Error", {}).get("Code", ""))
        return (
            status >= 500
            or status in (408, 429)
            or code in ("RequestTimeout", "SlowDown", "BadDigest")
        )
    try:
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, BotoCoreError)


def _md5_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _md5_range(path: Path, offset: int, size: int) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            block = f.read(min(_CHUNK * 4, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def local_etag(path: Path, remote_etag: str, size: int, part_size: int) -> str | None:
    """The S3 ETag ``path`` would have in ``remote_etag``'s form (plain MD5, or MD5 of part
    MD5s with ``-N``), or ``None`` when the part size cannot be inferred."""
    etag = remote_etag.strip('"').lower()
    if _MD5_RE.match(etag):
        return _md5_range(path, 0, size)
    m = _MULTI_RE.match(etag)
    if not m:
        return None
    n = int(m.group(1))
    guesses = (part_size, ceil_div(size, n), ceil_div(ceil_div(size, n), MiB) * MiB) if n else ()
    for candidate in guesses:
        if candidate > 0 and ceil_div(size, candidate) == n:
            parts = plan_parts(size, candidate)
            digests = b"".join(bytes.fromhex(_md5_range(path, p.offset, p.size)) for p in parts)
            return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{n}"
    return None


class Transfers:
    """One command's transfers; ``close()`` when done."""

    def __init__(
        self,
        client: Any,
        config: TransferConfig,
        progress: Progress,
        endpoint_url: str,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.config = config
        self.progress = progress
        self._endpoint = endpoint_url
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max(1, config.concurrency), thread_name_prefix="part")
        self._parts_lock = threading.Lock()
        self._parts_uploaded = 0
        self._temp_files: set[Path] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def remove_temp_files(self) -> None:
        """Delete unfinished download files (on interrupt, before exiting)."""
        with self._parts_lock:
            for tmp in self._temp_files:
                tmp.unlink(missing_ok=True)
            self._temp_files.clear()

    # -- retries ----------------------------------------------------------------------
    def _retry(self, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as e:
                if attempt >= self.config.attempts or not is_retryable(e):
                    raise
                delay = self.config.backoff_s * (2 ** (attempt - 1))
                self._sleep(delay * (0.5 + self._rng.random()))

    def _part_uploaded(self) -> None:
        with self._parts_lock:
            self._parts_uploaded += 1
            n = self._parts_uploaded
        limit = self.config.fail_after_parts
        if limit is not None and n >= limit:
            self.progress.clear()
            os._exit(130)

    # -- uploads ----------------------------------------------------------------------
    def upload_file(self, path: Path, bucket: str, key: str) -> TransferResult:
        st = path.stat()
        size = st.st_size
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if size < self.config.part_size:
            return self._put_small(path, bucket, key, size, content_type)
        state_file = state_path(
            self.config.state_dir or Path("."),
            self._endpoint,
            bucket,
            key,
            str(path.resolve()),
            size,
            st.st_mtime_ns,
        )
        state = load_state(state_file) if self.config.resume and self.config.state_dir else None
        listed = self._existing_parts(state) if state is not None else None
        if state is None or listed is None:
            parts = plan_parts(size, self.config.part_size)
            resp = self._retry(
                lambda: self.client.create_multipart_upload(
                    Bucket=bucket, Key=key, ContentType=content_type
                )
            )
            state = UploadState(
                resp["UploadId"],
                parts[0].size,
                bucket,
                key,
                str(path.resolve()),
                size,
                st.st_mtime_ns,
            )
            if self.config.state_dir is not None:
                save_state(state_file, state)
            listed = []
        parts = plan_parts(size, state.part_size)
        sizes = {p.number: p.size for p in parts}
        md5_futs = {
            p.number: self._pool.submit(_md5_range, path, (p.number - 1) * state.part_size, p.size)
            for p in listed
            if sizes.get(p.number) == p.size
        }
        plan = plan_resume(parts, listed, {n: f.result() for n, f in md5_futs.items()})
        self.progress.add_bytes(sum(p.size for p in plan.done), key)
        upload_id = state.upload_id
        futs = [
            self._pool.submit(self._upload_part, path, bucket, key, upload_id, p) for p in plan.todo
        ]
        uploaded = _results(futs)
        completed = sorted([*plan.done, *uploaded], key=lambda p: p.number)
        etag = self._complete(bucket, key, upload_id, completed)
        remove_state(state_file)
        return TransferResult(size, etag, len(uploaded), len(plan.done), True)

    def _existing_parts(self, state: UploadState) -> list[ListedPart] | None:
        """The parts of the saved upload, or ``None`` when the upload is gone."""
        if not self._upload_exists(state):
            return None
        listed: list[ListedPart] = []
        marker = 0
        while True:
            try:
                page = self.client.list_parts(
                    Bucket=state.bucket,
                    Key=state.key,
                    UploadId=state.upload_id,
                    PartNumberMarker=marker,
                )
            except Exception as e:
                if getattr(e, "response", {}).get("Error", {}).get("Code") == "NoSuchUpload":
                    return None
                raise
            for p in page.get("Parts", []):
                listed.append(ListedPart(int(p["PartNumber"]), int(p["Size"]), str(p["ETag"])))
            if not page.get("IsTruncated"):
                return listed
            marker = int(page["NextPartNumberMarker"])

    def _upload_exists(self, state: UploadState) -> bool:
        """Whether ListMultipartUploads still shows the saved upload (all pages)."""
        kwargs: dict[str, str] = {"Bucket": state.bucket, "Prefix": state.key}
        while True:
            page = self.client.list_multipart_uploads(**kwargs)
            if any(u.get("UploadId") == state.upload_id for u in page.get("Uploads", [])):
                return True
            if not page.get("IsTruncated"):
                return False
            kwargs["KeyMarker"] = str(page.get("NextKeyMarker", ""))
            kwargs["UploadIdMarker"] = str(page.get("NextUploadIdMarker", ""))

    def _upload_part(
        self, path: Path, bucket: str, key: str, upload_id: str, part: PartRange
    ) -> ListedPart:
        def attempt() -> ListedPart:
            with path.open("rb") as f:
                f.seek(part.offset)
                data = f.read(part.size)
            return self._send_part(bucket, key, upload_id, part.number, data)

        done = self._retry(attempt)
        self.progress.add_bytes(part.size, key)
        self._part_uploaded()
        return done

    def _send_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes
    ) -> ListedPart:
        """One UploadPart attempt with Content-MD5; the returned ETag must be that MD5."""
        digest = hashlib.md5(data, usedforsecurity=False)
        resp = self.client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentMD5=_md5_b64(digest.digest()),
        )
        etag = str(resp["ETag"]).strip('"')
        if etag.lower() != digest.hexdigest():
            raise EtagMismatch(f"part {number}: ETag {etag} != {digest.hexdigest()}")
        return ListedPart(number, len(data), etag)

    def _complete(self, bucket: str, key: str, upload_id: str, parts: list[ListedPart]) -> str:
        doc = {"Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]}
        resp = self._retry(
            lambda: self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=doc
            )
        )
        return str(resp.get("ETag", "")).strip('"')

    def _put_small(
        self, path: Path, bucket: str, key: str, size: int, content_type: str
    ) -> TransferResult:
        def attempt() -> str:
            data = path.read_bytes()
            return self._put_bytes(bucket, key, data, content_type)

        etag = self._retry(attempt)
        self.progress.add_bytes(size, key)
        return TransferResult(size, etag)

    def _put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        digest = hashlib.md5(data, usedforsecurity=False)
        resp = self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ContentMD5=_md5_b64(digest.digest()),
        )
        etag = str(resp["ETag"]).strip('"')
        if etag.lower() != digest.hexdigest():
            raise EtagMismatch(f"{key}: ETag {etag} != {digest.hexdigest()}")
        return etag

    def upload_stream(self, stream: BinaryIO, bucket: str, key: str) -> TransferResult:
        """Upload a stream of unknown length (stdin); not resumable."""
        ps = self.config.part_size
        first = _read_full(stream, ps)
        if len(first) < ps:
            etag = self._retry(
                lambda: self._put_bytes(bucket, key, first, "application/octet-stream")
            )
            self.progress.add_bytes(len(first), key)
            return TransferResult(len(first), etag)
        upload_id = self._retry(
            lambda: self.client.create_multipart_upload(Bucket=bucket, Key=key)
        )["UploadId"]
        window = threading.BoundedSemaphore(max(1, self.config.concurrency) * 2)
        futs: list[Future[ListedPart]] = []
        total = 0
        try:
            data, number = first, 1
            while data:
                window.acquire()
                part = PartRange(number, total, len(data))
                fut = self._pool.submit(self._upload_bytes_part, bucket, key, upload_id, part, data)
                fut.add_done_callback(lambda _f: window.release())
                futs.append(fut)
                total += len(data)
                number += 1
                data = _read_full(stream, ps)
            parts = _results(futs)
            etag = self._complete(bucket, key, upload_id, parts)
        except BaseException:
            for f in futs:
                f.cancel()
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return TransferResult(total, etag, len(parts), 0, True)

    def _upload_bytes_part(
        self, bucket: str, key: str, upload_id: str, part: PartRange, data: bytes
    ) -> ListedPart:
        done = self._retry(lambda: self._send_part(bucket, key, upload_id, part.number, data))
        self.progress.add_bytes(part.size, key)
        return done

    # -- downloads --------------------------------------------------------------------
    def download_file(
        self, bucket: str, key: str, dest: Path, *, count_total: bool = False
    ) -> TransferResult:
        """Ranged parallel download, verified against the ETag where it can be (see
        ``_verify``); ``count_total`` adds the size to the progress total."""
        head = self._retry(lambda: self.client.head_object(Bucket=bucket, Key=key))
        size = int(head["ContentLength"])
        if count_total:
            self.progress.add_total(size, files=0)
        etag = str(head.get("ETag", "")).strip('"').lower()
        part_size = self._multipart_part_size(bucket, key, etag, size)
        # Ranges on the object's own part boundaries give its multipart ETag from the
        # range MD5s computed while streaming; parts far above --part-size would cost
        # parallelism, so those are checked by re-reading the file instead.
        inline = part_size is not None and part_size <= 4 * self.config.part_size
        ranges = plan_parts(size, part_size if inline and part_size else self.config.part_size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.{self._rng.getrandbits(32):08x}.part"
        with self._parts_lock:
            self._temp_files.add(tmp)
        try:
            with tmp.open("wb") as f:
                f.truncate(size)
            futs = [
                self._pool.submit(self._download_range, bucket, key, etag, tmp, r)
                for r in ranges
                if r.size
            ]
            digests = _results(futs)
            verified = self._verify(tmp, key, etag, size, part_size, inline, digests)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            with self._parts_lock:
                self._temp_files.discard(tmp)
        mtime = head["LastModified"].timestamp()
        os.utime(dest, (mtime, mtime))
        return TransferResult(size, etag, multipart=len(ranges) > 1, verified=verified)

    def _multipart_part_size(self, bucket: str, key: str, etag: str, size: int) -> int | None:
        """The part size of a multipart object (``HEAD ?partNumber=1``) when its parts are
        uniform (all but the last), else ``None``."""
        m = _MULTI_RE.match(etag)
        if not m or size == 0:
            return None
        try:
            h = self._retry(
                lambda: self.client.head_object(
                    Bucket=bucket, Key=key, PartNumber=1, IfMatch=f'"{etag}"'
                )
            )
        except Exception as e:
            if is_retryable(e) or getattr(e, "response", None) is None:
                raise
            return None  # endpoint without partNumber support: not verifiable
        first = int(h["ContentLength"])
        return first if first > 0 and ceil_div(size, first) == int(m.group(1)) else None

    def _verify(
        self,
        tmp: Path,
        key: str,
        etag: str,
        size: int,
        part_size: int | None,
        inline: bool,
        digests: list[bytes],
    ) -> bool:
        """Check the downloaded bytes against the ETag; ``False`` when it cannot be done
        (e.g. non-uniform multipart parts, or an ETag that is not an MD5 form)."""
        if inline:
            composite = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
            got = f"{composite}-{len(digests)}"
        elif _MD5_RE.match(etag):
            got = digests[0].hex() if len(digests) == 1 else _md5_range(tmp, 0, size)
        elif part_size is not None:
            got = local_etag(tmp, etag, size, part_size) or ""
        else:
            return False
        if got != etag:
            raise EtagMismatch(f"{key}: downloaded bytes have ETag {got}, not {etag}")
        return True

    def _download_range(self, bucket: str, key: str, etag: str, tmp: Path, r: PartRange) -> bytes:
        """Write one range into ``tmp``; returns the MD5 digest of its bytes."""

        def attempt() -> bytes:
            written = 0
            digest = hashlib.md5(usedforsecurity=False)
            try:
                extra = {"IfMatch": f'"{etag}"'} if etag else {}
                resp = self.client.get_object(
                    Bucket=bucket,
                    Key=key,
                    Range=f"bytes={r.offset}-{r.offset + r.size - 1}",
                    **extra,
                )
                fd = os.open(tmp, os.O_WRONLY)
                try:
                    for chunk in resp["Body"].iter_chunks(_CHUNK):
                        os.pwrite(fd, chunk, r.offset + written)
                        digest.update(chunk)
                        written += len(chunk)
                        self.progress.add_bytes(len(chunk), key)
                finally:
                    os.close(fd)
                    resp["Body"].close()
                if written != r.size:
                    raise EtagMismatch(f"{key}: range at {r.offset} gave {written} bytes")
                return digest.digest()
            except BaseException:
                self.progress.add_bytes(-written)
                raise

        return self._retry(attempt)

    def download_stream(self, bucket: str, key: str, out: BinaryIO) -> TransferResult:
        """Stream an object to ``out`` in order; a broken connection resumes at the offset
        reached (with If-Match), and a plain-MD5 ETag is checked at the end."""
        pos = 0
        digest = hashlib.md5(usedforsecurity=False)
        etag = ""
        attempt = 0
        while True:
            attempt += 1
            try:
                extra: dict[str, str] = {"Range": f"bytes={pos}-"} if pos else {}
                if etag:
                    extra["IfMatch"] = f'"{etag}"'
                resp = self.client.get_object(Bucket=bucket, Key=key, **extra)
                etag = etag or str(resp.get("ETag", "")).strip('"')
                for chunk in resp["Body"].iter_chunks(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    pos += len(chunk)
                    self.progress.add_bytes(len(chunk), key)
                resp["Body"].close()
                break
            except Exception as e:
                if attempt >= self.config.attempts or not is_retryable(e):
                    raise
                self._sleep(self.config.backoff_s * (2 ** (attempt - 1)))
        out.flush()
        if _MD5_RE.match(etag.lower()) and digest.hexdigest() != etag.lower():
            raise EtagMismatch(f"{key}: streamed bytes have MD5 {digest.hexdigest()}, ETag {etag}")
        return TransferResult(pos, etag)

    # -- server-side copies -----------------------------------------------------------
    def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, *, count_total: bool = False
    ) -> TransferResult:
        """CopyObject below the part size, parallel UploadPartCopy from it up."""
        head = self._retry(lambda: self.client.head_object(Bucket=src_bucket, Key=src_key))
        size = int(head["ContentLength"])
        if count_total:
            self.progress.add_total(size, files=0)
        source = {"Bucket": src_bucket, "Key": src_key}
        if size < self.config.part_size:
            resp = self._retry(
                lambda: self.client.copy_object(Bucket=bucket, Key=key, CopySource=source)
            )
            self.progress.add_bytes(size, key)
            return TransferResult(size, str(resp["CopyObjectResult"]["ETag"]).strip('"'))
        etag = str(head.get("ETag", "")).strip('"')
        create: dict[str, Any] = {"Metadata": head.get("Metadata", {})}
        if head.get("ContentType"):
            create["ContentType"] = head["ContentType"]
        upload_id = self._retry(
            lambda: self.client.create_multipart_upload(Bucket=bucket, Key=key, **create)
        )["UploadId"]
        try:
            futs = [
                self._pool.submit(self._copy_part, source, etag, bucket, key, upload_id, p)
                for p in plan_parts(size, self.config.part_size)
            ]
            parts = _results(futs)
            etag = self._complete(bucket, key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return TransferResult(size, etag, len(parts), 0, True)

    def _copy_part(
        self,
        source: dict[str, str],
        etag: str,
        bucket: str,
        key: str,
        upload_id: str,
        part: PartRange,
    ) -> ListedPart:
        extra = {"CopySourceIfMatch": f'"{etag}"'} if etag else {}
        resp = self._retry(
            lambda: self.client.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=part.number,
                CopySource=source,
                CopySourceRange=f"bytes={part.offset}-{part.offset + part.size - 1}",
                **extra,
            )
        )
        self.progress.add_bytes(part.size, key)
        return ListedPart(part.number, part.size, str(resp["CopyPartResult"]["ETag"]).strip('"'))


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at end of stream."""
    buf = bytearray()
    while len(buf) < n:
        block = stream.read(n - len(buf))
        if not block:
            break
        buf += block
    return bytes(buf)


def _results(futs: list[Future[T]]) -> list[T]:
    """Every result in order; on the first failure cancel the rest and raise it."""
    try:
        return [f.result() for f in futs]
    except BaseException:
        for f in futs:
            f.cancel()
        raise
