"""An in-memory stand-in for the boto3 S3 client calls the CLI makes (thread-safe), with
failure injection: ``fail[(op, part_number)] = n`` fails that call ``n`` times with a 500."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

__all__ = ["FakeS3"]


def _err(code: str, status: int, op: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        op,
    )


class _Body:
    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def iter_chunks(self, size: int) -> Any:
        while block := self._io.read(size):
            yield block

    def close(self) -> None:
        pass


class _Paginator:
    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3

    def paginate(self, Bucket: str, Prefix: str = "", Delimiter: str | None = None) -> Any:
        keys = sorted(k for k in self.s3.buckets[Bucket] if k.startswith(Prefix))
        contents, prefixes = [], []
        for k in keys:
            rest = k[len(Prefix) :]
            if Delimiter and Delimiter in rest:
                p = Prefix + rest.split(Delimiter, 1)[0] + Delimiter
                if p not in prefixes:
                    prefixes.append(p)
                continue
            data, etag, lm = self.s3.buckets[Bucket][k]
            contents.append({"Key": k, "Size": len(data), "ETag": f'"{etag}"', "LastModified": lm})
        yield {"Contents": contents, "CommonPrefixes": [{"Prefix": p} for p in prefixes]}


class FakeS3:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, tuple[bytes, str, datetime]]] = {}
        self.part_sizes: dict[tuple[str, str], list[int]] = {}
        self.uploads: dict[str, tuple[str, str, dict[int, bytes]]] = {}
        self.calls: Counter[str] = Counter()
        self.fail: dict[tuple[str, int], int] = {}
        self.corrupt_etag: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def _count(self, op: str, part: int = 0) -> None:
        with self._lock:
            self.calls[op] += 1
            if self.fail.get((op, part), 0) > 0:
                self.fail[(op, part)] -= 1
                raise _err("InternalError", 500, op)

    def _put(self, bucket: str, key: str, data: bytes, etag: str) -> None:
        self.buckets[bucket][key] = (data, etag, self.now)
        self.part_sizes.pop((bucket, key), None)

    # -- boto3 API subset -------------------------------------------------------------
    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentMD5: str = "", **_: Any) -> Any:
        self._count("put_object")
        md5 = hashlib.md5(Body).digest()
        if ContentMD5 and base64.b64decode(ContentMD5) != md5:
            raise _err("BadDigest", 400, "PutObject")
        self._put(Bucket, Key, Body, md5.hex())
        return {"ETag": f'"{md5.hex()}"'}

    def head_object(self, Bucket: str, Key: str, PartNumber: int = 0, IfMatch: str = "") -> Any:
        self._count("head_object")
        if Key not in self.buckets.get(Bucket, {}):
            raise _err("404", 404, "HeadObject")
        data, etag, lm = self.buckets[Bucket][Key]
        if IfMatch and IfMatch.strip('"') != etag:
            raise _err("412", 412, "HeadObject")
        if PartNumber:
            sizes = self.part_sizes.get((Bucket, Key), [len(data)])
            data = bytes(sizes[PartNumber - 1])
        return {
            "ContentLength": len(data),
            "ETag": f'"{etag}"',
            "LastModified": lm,
            "ContentType": "application/octet-stream",
            "Metadata": {},
        }

    def get_object(self, Bucket: str, Key: str, Range: str = "", IfMatch: str = "") -> Any:
        self._count("get_object")
        data, etag, _ = self.buckets[Bucket][Key]
        if IfMatch and IfMatch.strip('"') != etag:
            raise _err("PreconditionFailed", 412, "GetObject")
        if Range:
            start, _, end = Range.removeprefix("bytes=").partition("-")
            data = data[int(start) : int(end) + 1 if end else None]
        return {"Body": _Body(data), "ETag": f'"{etag}"'}

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> Any:
        self._count("create_multipart_upload")
        upload_id = f"up{next(self._ids)}"
        self.uploads[upload_id] = (Bucket, Key, {})
        return {"UploadId": upload_id}

    def upload_part(
        self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes, ContentMD5: str
    ) -> Any:
        self._count("upload_part", PartNumber)
        md5 = hashlib.md5(Body).hexdigest()
        self.uploads[UploadId][2][PartNumber] = Body
        with self._lock:
            if self.corrupt_etag.get(PartNumber, 0) > 0:
                self.corrupt_etag[PartNumber] -= 1
                return {"ETag": '"00000000000000000000000000000000"'}
        return {"ETag": f'"{md5}"'}

    def list_multipart_uploads(self, Bucket: str, Prefix: str = "") -> Any:
        self._count("list_multipart_uploads")
        return {
            "Uploads": [
                {"Key": k, "UploadId": u}
                for u, (b, k, _) in self.uploads.items()
                if b == Bucket and k.startswith(Prefix)
            ]
        }

    def list_parts(self, Bucket: str, Key: str, UploadId: str, PartNumberMarker: int = 0) -> Any:
        self._count("list_parts")
        parts = self.uploads[UploadId][2]
        return {
            "Parts": [
                {"PartNumber": n, "Size": len(d), "ETag": f'"{hashlib.md5(d).hexdigest()}"'}
                for n, d in sorted(parts.items())
                if n > PartNumberMarker
            ],
            "IsTruncated": False,
        }

    def complete_multipart_upload(
        self, Bucket: str, Key: str, UploadId: str, MultipartUpload: Any
    ) -> Any:
        self._count("complete_multipart_upload")
        _, _, parts = self.uploads.pop(UploadId)
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == sorted(numbers)
        data = b"".join(parts[n] for n in numbers)
        digests = b"".join(hashlib.md5(parts[n]).digest() for n in numbers)
        etag = f"{hashlib.md5(digests).hexdigest()}-{len(numbers)}"
        self._put(Bucket, Key, data, etag)
        self.part_sizes[(Bucket, Key)] = [len(parts[n]) for n in numbers]
        return {"ETag": f'"{etag}"'}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> Any:
        self._count("abort_multipart_upload")
        self.uploads.pop(UploadId, None)
        return {}

    def copy_object(self, Bucket: str, Key: str, CopySource: dict[str, str]) -> Any:
        self._count("copy_object")
        data, etag, _ = self.buckets[CopySource["Bucket"]][CopySource["Key"]]
        self._put(Bucket, Key, data, etag)
        return {"CopyObjectResult": {"ETag": f'"{etag}"'}}

    def upload_part_copy(
        self,
        Bucket: str,
        Key: str,
        UploadId: str,
        PartNumber: int,
        CopySource: dict[str, str],
        CopySourceRange: str,
        CopySourceIfMatch: str = "",
    ) -> Any:
        self._count("upload_part_copy", PartNumber)
        data, _, _ = self.buckets[CopySource["Bucket"]][CopySource["Key"]]
        start, _, end = CopySourceRange.removeprefix("bytes=").partition("-")
        chunk = data[int(start) : int(end) + 1]
        self.uploads[UploadId][2][PartNumber] = chunk
        return {"CopyPartResult": {"ETag": f'"{hashlib.md5(chunk).hexdigest()}"'}}

    def get_paginator(self, name: str) -> _Paginator:
        assert name == "list_objects_v2"
        return _Paginator(self)
