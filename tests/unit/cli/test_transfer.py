"""The transfer engine against an in-memory fake S3 client: multipart, retries, ETag
checks, resume, ranged downloads, streaming and server-side copies."""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from blobstore.cli.progress import Progress
from blobstore.cli.resume import load_state, state_path
from blobstore.cli.transfer import (
    EtagMismatch,
    TransferConfig,
    Transfers,
    is_retryable,
    local_etag,
)
from tests.unit.cli.fakes3 import FakeS3

PART = 64 * 1024  # the engine does not enforce S3's 5 MiB minimum; the CLI does


@pytest.fixture
def s3() -> FakeS3:
    fake = FakeS3()
    fake.buckets["b"] = {}
    return fake


def _engine(s3: FakeS3, tmp_path: Path, **kw: object) -> Transfers:
    config = TransferConfig(
        part_size=PART,
        concurrency=3,
        attempts=3,
        backoff_s=0.0,
        state_dir=tmp_path / "state",
        **kw,  # type: ignore[arg-type]
    )
    progress = Progress(io.StringIO(), enabled=False, is_tty=False)
    return Transfers(s3, config, progress, "http://e", rng=random.Random(1), sleep=lambda _: None)


@pytest.fixture
def engine(s3: FakeS3, tmp_path: Path) -> Iterator[Transfers]:
    t = _engine(s3, tmp_path)
    yield t
    t.close()


def _file(tmp_path: Path, size: int, name: str = "f.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(random.Random(size).randbytes(size))
    return path


def test_small_file_is_one_put(s3: FakeS3, engine: Transfers, tmp_path: Path) -> None:
    path = _file(tmp_path, 1000)
    r = engine.upload_file(path, "b", "k")
    assert s3.buckets["b"]["k"][0] == path.read_bytes()
    assert r.etag == hashlib.md5(path.read_bytes()).hexdigest() and not r.multipart
    assert s3.calls["put_object"] == 1 and s3.calls["upload_part"] == 0


def test_multipart_upload_retries_failed_parts(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    path = _file(tmp_path, 3 * PART + 17)
    s3.fail[("upload_part", 2)] = 2  # fails twice, third attempt succeeds
    s3.corrupt_etag[3] = 1  # one wrong ETag -> retried
    r = engine.upload_file(path, "b", "k")
    assert s3.buckets["b"]["k"][0] == path.read_bytes()
    assert r.multipart and r.parts_uploaded == 4 and r.parts_reused == 0
    assert s3.calls["upload_part"] == 4 + 2 + 1
    assert r.etag == local_etag(path, r.etag, path.stat().st_size, PART)
    assert not list((tmp_path / "state").glob("*.json"))  # state removed after completion


def test_part_failing_too_often_fails_and_keeps_the_upload(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    path = _file(tmp_path, 2 * PART)
    s3.fail[("upload_part", 1)] = 3
    with pytest.raises(ClientError):
        engine.upload_file(path, "b", "k")
    assert "k" not in s3.buckets["b"]
    assert len(s3.uploads) == 1 and len(list((tmp_path / "state").glob("*.json"))) == 1


def test_resume_uploads_only_missing_parts(s3: FakeS3, tmp_path: Path) -> None:
    path = _file(tmp_path, 4 * PART + 5)
    first = _engine(s3, tmp_path)
    s3.fail[("upload_part", 3)] = 99
    with pytest.raises(ClientError):
        first.upload_file(path, "b", "k")
    first.close()
    ((_, (_, _, live_parts)),) = s3.uploads.items()
    parts = set(live_parts)
    assert 3 not in parts and 1 in parts
    before = s3.calls["upload_part"]
    s3.fail.clear()
    second = _engine(s3, tmp_path)
    r = second.upload_file(path, "b", "k")
    second.close()
    assert r.parts_reused == len(parts) and r.parts_uploaded == 5 - len(parts)
    assert s3.calls["upload_part"] - before == r.parts_uploaded
    assert s3.calls["create_multipart_upload"] == 1
    assert s3.buckets["b"]["k"][0] == path.read_bytes()


def test_resume_reuploads_parts_whose_bytes_changed(s3: FakeS3, tmp_path: Path) -> None:
    path = _file(tmp_path, 2 * PART)
    eng = _engine(s3, tmp_path)
    s3.fail[("upload_part", 2)] = 99
    with pytest.raises(ClientError):
        eng.upload_file(path, "b", "k")
    # Same size and mtime, different bytes in part 1 (e.g. rewritten in place).
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    s3.fail.clear()
    r = eng.upload_file(path, "b", "k")
    eng.close()
    assert r.parts_reused == 0 and r.parts_uploaded == 2
    assert s3.buckets["b"]["k"][0] == bytes(data)


def test_resume_starts_afresh_when_upload_is_gone_or_disabled(s3: FakeS3, tmp_path: Path) -> None:
    path = _file(tmp_path, 2 * PART)
    eng = _engine(s3, tmp_path)
    s3.fail[("upload_part", 2)] = 99
    with pytest.raises(ClientError):
        eng.upload_file(path, "b", "k")
    st = path.stat()
    sp = state_path(
        tmp_path / "state", "http://e", "b", "k", str(path.resolve()), st.st_size, st.st_mtime_ns
    )
    assert load_state(sp) is not None
    s3.uploads.clear()  # aborted elsewhere
    s3.fail.clear()
    r = eng.upload_file(path, "b", "k")
    eng.close()
    assert r.parts_reused == 0 and s3.calls["create_multipart_upload"] == 2

    no_resume = _engine(s3, tmp_path / "other", resume=False)
    s3.fail[("upload_part", 2)] = 99
    with pytest.raises(ClientError):
        no_resume.upload_file(path, "b", "k2")
    s3.fail.clear()
    assert no_resume.upload_file(path, "b", "k2").parts_reused == 0
    no_resume.close()


def test_ranged_download_checks_etag_and_sets_mtime(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    path = _file(tmp_path, 3 * PART + 1)
    engine.upload_file(path, "b", "k")
    dest = tmp_path / "out" / "k"
    s3.fail[("get_object", 0)] = 1
    r = engine.download_file("b", "k", dest)
    assert dest.read_bytes() == path.read_bytes() and r.multipart
    assert dest.stat().st_mtime == s3.now.timestamp()
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".part")]


def test_download_with_wrong_etag_fails_and_leaves_nothing(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    s3.buckets["b"]["k"] = (b"hello", "0" * 32, datetime(2026, 1, 1, tzinfo=UTC))
    dest = tmp_path / "k"
    with pytest.raises(EtagMismatch):
        engine.download_file("b", "k", dest)
    assert list(tmp_path.iterdir()) == [tmp_path / "state"] or not dest.exists()
    assert not dest.exists()


def test_stream_upload_and_download(s3: FakeS3, engine: Transfers) -> None:
    data = random.Random(5).randbytes(2 * PART + 3)
    r = engine.upload_stream(io.BytesIO(data), "b", "s")
    assert r.multipart and r.size == len(data) and s3.buckets["b"]["s"][0] == data
    small = engine.upload_stream(io.BytesIO(b"tiny"), "b", "t")
    assert not small.multipart and s3.buckets["b"]["t"][0] == b"tiny"
    out = io.BytesIO()
    engine.download_stream("b", "t", out)
    assert out.getvalue() == b"tiny"


def test_stream_upload_failure_aborts(s3: FakeS3, engine: Transfers) -> None:
    s3.fail[("upload_part", 2)] = 99
    with pytest.raises(ClientError):
        engine.upload_stream(io.BytesIO(bytes(3 * PART)), "b", "s")
    assert s3.uploads == {} and s3.calls["abort_multipart_upload"] == 1


def test_server_side_copy_small_and_multipart(s3: FakeS3, engine: Transfers) -> None:
    s3.buckets["b"]["small"] = (b"abc", hashlib.md5(b"abc").hexdigest(), s3.now)
    engine.copy_object("b", "small", "b", "small2")
    assert s3.buckets["b"]["small2"][0] == b"abc" and s3.calls["copy_object"] == 1
    big = random.Random(9).randbytes(2 * PART + 1)
    engine.upload_stream(io.BytesIO(big), "b", "big")
    r = engine.copy_object("b", "big", "b", "big2")
    assert s3.buckets["b"]["big2"][0] == big and r.multipart
    assert s3.calls["upload_part_copy"] == 3


def test_is_retryable() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    assert is_retryable(client_error("InternalError", 500))
    assert is_retryable(client_error("SlowDown", 503))
    assert is_retryable(client_error("RequestTimeout", 400))
    assert is_retryable(client_error("BadDigest", 400))  # corrupted in transit
    assert not is_retryable(client_error("NoSuchBucket", 404))
    assert not is_retryable(client_error("AccessDenied", 403))
    assert is_retryable(EndpointConnectionError(endpoint_url="http://x"))
    assert is_retryable(EtagMismatch("x"))
    assert not is_retryable(ValueError("x"))


def test_local_etag_forms(tmp_path: Path) -> None:
    path = _file(tmp_path, 2 * PART + 1)
    data = path.read_bytes()
    assert (
        local_etag(path, hashlib.md5(data).hexdigest(), len(data), PART)
        == hashlib.md5(data).hexdigest()
    )
    digests = b"".join(hashlib.md5(data[i : i + PART]).digest() for i in range(0, len(data), PART))
    multi = f"{hashlib.md5(digests).hexdigest()}-3"
    assert local_etag(path, multi, len(data), PART) == multi
    # another part size that gives 3 parts is inferred from the size
    assert local_etag(path, "f" * 32 + "-7", len(data), PART) is not None
    assert local_etag(path, "weird", len(data), PART) is None


def test_interrupted_download_temp_files_are_removed(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    s3.buckets["b"]["k"] = (b"data", hashlib.md5(b"data").hexdigest(), s3.now)
    original = s3.get_object
    seen: list[Path] = []

    def interrupting_get(**kw: object) -> object:
        seen.extend(p for p in (tmp_path / "d").iterdir() if p.name.endswith(".part"))
        engine.remove_temp_files()  # what the CLI does on Ctrl-C before exiting
        return original(**kw)  # type: ignore[arg-type]

    s3.get_object = interrupting_get  # type: ignore[method-assign, assignment]
    with pytest.raises(FileNotFoundError):
        engine.download_file("b", "k", tmp_path / "d" / "k")
    assert len(seen) == 1 and not seen[0].exists()
    assert list((tmp_path / "d").iterdir()) == []


def test_download_ranges_follow_the_objects_parts_and_verify_inline(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    data = random.Random(4).randbytes(5 * PART + 3)
    # uploaded by "another client" with 2*PART parts: ranges follow those parts
    s3.buckets["b"]["k"] = (b"", "", s3.now)
    up = s3.create_multipart_upload(Bucket="b", Key="k")["UploadId"]
    for n, off in enumerate(range(0, len(data), 2 * PART), 1):
        chunk = data[off : off + 2 * PART]
        s3.upload_part(Bucket="b", Key="k", UploadId=up, PartNumber=n, Body=chunk, ContentMD5="")
    parts = [{"PartNumber": n, "ETag": ""} for n in (1, 2, 3)]
    s3.complete_multipart_upload(Bucket="b", Key="k", UploadId=up, MultipartUpload={"Parts": parts})
    gets = s3.calls["get_object"]
    r = engine.download_file("b", "k", tmp_path / "k")
    assert r.verified and (tmp_path / "k").read_bytes() == data
    assert s3.calls["get_object"] - gets == 3

    # same length, different bytes: the composite ETag no longer matches
    s3.buckets["b"]["k"] = (bytes(len(data)), *s3.buckets["b"]["k"][1:])
    with pytest.raises(EtagMismatch):
        engine.download_file("b", "k", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_download_of_non_uniform_parts_is_not_verified(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    s3.buckets["b"]["k"] = (b"abcdefgh", "0" * 32 + "-2", s3.now)
    s3.part_sizes[("b", "k")] = [3, 5]
    r = engine.download_file("b", "k", tmp_path / "k")
    assert not r.verified and (tmp_path / "k").read_bytes() == b"abcdefgh"


def test_download_from_endpoint_without_part_number_support(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    path = _file(tmp_path, 2 * PART + 1)
    engine.upload_file(path, "b", "k")
    original = s3.head_object

    def head(**kw: Any) -> Any:
        if kw.get("PartNumber"):
            raise ClientError(
                {"Error": {"Code": "InvalidArgument"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                "HeadObject",
            )
        return original(**kw)

    s3.head_object = head  # type: ignore[method-assign, assignment]
    r = engine.download_file("b", "k", tmp_path / "k")
    assert not r.verified and (tmp_path / "k").read_bytes() == path.read_bytes()


def test_download_of_large_single_part_object_rereads_to_verify(
    s3: FakeS3, engine: Transfers, tmp_path: Path
) -> None:
    data = random.Random(8).randbytes(3 * PART)
    s3.buckets["b"]["k"] = (data, hashlib.md5(data).hexdigest(), s3.now)
    r = engine.download_file("b", "k", tmp_path / "k")
    assert r.verified and r.multipart and (tmp_path / "k").read_bytes() == data
    s3.buckets["b"]["k"] = (data, "f" * 32, s3.now)
    with pytest.raises(EtagMismatch):
        engine.download_file("b", "k", tmp_path / "k2")
    s3.buckets["b"]["e"] = (b"", hashlib.md5(b"").hexdigest(), s3.now)
    assert engine.download_file("b", "e", tmp_path / "e").verified
    assert (tmp_path / "e").read_bytes() == b""
