"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-s3``, ``lib-storage``,
``s3-request-presigner``) against a real ``blobstore server``, http and https.

The SDK is pinned in ``tests/e2e/js/package-lock.json`` and installed into
``tests/e2e/js/node_modules`` by ``scripts/install-test-deps.sh`` (``npm ci``); the tests
skip, saying so, only when ``node`` or that ``node_modules`` is missing.

``tests/e2e/js/s3_workflow.mjs`` runs once per endpoint (module fixture ``js_run``): inputs
are files made here (seeded random bytes), endpoint/credentials/bucket go in through the
environment, and the script writes one JSON result per step -- what the SDK returned
(ETags, SHA-256 of downloaded bodies, listing pages, error names and statuses) plus every
HTTP exchange of the step. Each test below judges one step, byte-exact against the inputs
and, where it helps, through an independent boto3 client; a failing step shows its
requests and responses.

What the SDK does on the wire (asserted, so a changed SDK cannot silently stop testing
it): a streamed PutObject (file stream or Readable) is ``aws-chunked`` with
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` and a trailing ``x-amz-checksum-crc32`` even over
plain HTTP; a Buffer PutObject and every UploadPart carry ``x-amz-checksum-crc32``;
GetObject sends ``x-amz-checksum-mode: ENABLED`` and validates what comes back;
DeleteObjects carries crc32 and no Content-MD5. A presigned PutObject URL carries the
CRC32 of an *empty* body (the SDK signs before it sees one); S3 ignores checksums in
presigned URLs, and so do we: the upload is stored as sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    S3Endpoint,
    boto3_client,
    client_env,
    collect_leaked_sockets,
    empty_bucket,
    sha256_file,
)

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "s3_workflow.mjs"
PART = 5 * MiB  # the script's lib-storage partSize
LIST_KEYS = (
    "list/a/1.txt",
    "list/a/2.txt",
    "list/b/1.txt",
    "list/c.txt",
    "list/d+e f.txt",
    "list/é.txt",
    "list/z/deep/x.txt",
)
# ListObjectsV2 Prefix=list/ Delimiter=/ MaxKeys=2, page by page: (keys, common prefixes)
DELIMITED_PAGES: tuple[tuple[list[str], list[str]], ...] = (
    ([], ["list/a/", "list/b/"]),
    (["list/c.txt", "list/d+e f.txt"], []),
    (["list/é.txt"], ["list/z/"]),  # 'z' (0x7a) sorts before 'é' (0xc3 0xa9)
)


@dataclass(frozen=True, slots=True)
class Inputs:
    stream: bytes  # stream.bin: PutObject from a file stream and from a Readable
    buffer: bytes  # buffer.bin: PutObject of a Buffer, copied, presigned GET
    big: bytes  # big.bin: lib-storage multipart Upload


@dataclass(frozen=True, slots=True)
class Step:
    """One step of s3_workflow.mjs: ``data`` when it succeeded, ``error`` when not,
    ``wire`` its HTTP exchanges."""

    name: str
    ok: bool
    data: dict[str, Any]
    error: dict[str, Any] | None
    wire: list[dict[str, Any]]

    def result(self) -> dict[str, Any]:
        if not self.ok:
            pytest.fail(f"step {self.name} failed: {self.error}\n{self.describe()}")
        return self.data

    def describe(self) -> str:
        lines = []
        for ex in self.wire:
            query = "&".join(f"{k}={v}" for k, v in ex.get("query", {}).items())
            lines.append(f"> {ex['method']} {ex['path']}{'?' + query if query else ''}")
            lines += [f">   {k}: {v}" for k, v in ex["headers"].items()]
            lines.append(f"< {ex.get('status', ex.get('transport_error'))}")
            lines += [f"<   {k}: {v}" for k, v in ex.get("response_headers", {}).items()]
        return "\n".join(lines)

    def requests(self, method: str | None = None) -> list[dict[str, str]]:
        """The request headers (names lower-cased) of the step's exchanges."""
        return [
            {k.lower(): v for k, v in ex["headers"].items()}
            for ex in self.wire
            if method is None or ex["method"] == method
        ]


@dataclass(frozen=True, slots=True)
class JsRun:
    endpoint: S3Endpoint
    bucket: str
    workdir: Path
    inputs: Inputs
    node_version: str
    steps: dict[str, Step]
    verifier: Any  # boto3 S3 client on the same endpoint

    def step(self, name: str) -> Step:
        assert name in self.steps, f"s3_workflow.mjs reported no step {name!r}"
        return self.steps[name]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def _crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _multipart_etag(data: bytes, part: int) -> str:
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def _boto3_sha(client: Any, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return _sha(body.read())
    finally:
        body.close()


def _require_sdk() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed (Debian packages nodejs and npm; "
            "scripts/install-test-deps.sh installs them as root)"
        )
    if not (JS_DIR / "node_modules/@aws-sdk/client-s3/package.json").is_file():
        pytest.skip(
            f"the AWS SDK for JavaScript is not installed in {JS_DIR / 'node_modules'} "
            "(scripts/install-test-deps.sh runs npm ci there)"
        )
    return node


@pytest.fixture(scope="module", params=["http", "https"])
def js_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JsRun]:
    node = _require_sdk()
    name = "s3_endpoint" if request.param == "http" else "s3_endpoint_https"
    endpoint: S3Endpoint = request.getfixturevalue(name)
    workdir = tmp_path_factory.mktemp(f"js-{request.param}")
    rng = random.Random(2026)
    inputs = Inputs(
        stream=rng.randbytes(3 * MiB + 17),  # many 64 KiB aws-chunked chunks
        buffer=rng.randbytes(70_000),
        big=rng.randbytes(4 * PART + 321),  # 5 parts, the last one short
    )
    (workdir / "stream.bin").write_bytes(inputs.stream)
    (workdir / "buffer.bin").write_bytes(inputs.buffer)
    (workdir / "big.bin").write_bytes(inputs.big)
    bucket = f"e2e-js-{uuid.uuid4().hex[:12]}"
    env = client_env(
        E2E_S3_ENDPOINT=endpoint.endpoint_url,
        E2E_S3_ACCESS_KEY=endpoint.access_key,
        E2E_S3_SECRET_KEY=endpoint.secret_key,
        E2E_S3_BUCKET=bucket,
        E2E_S3_LIST_KEYS=json.dumps(LIST_KEYS),
    )
    if endpoint.ca_bundle:
        env["NODE_EXTRA_CA_CERTS"] = endpoint.ca_bundle  # the SDK's https agent and fetch
    results = workdir / "results.json"
    verifier = boto3_client(endpoint)
    try:
        proc = subprocess.run(
            [node, str(SCRIPT), str(workdir), str(results)],
            env=env,
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0 or not results.is_file():
            pytest.fail(
                f"s3_workflow.mjs exited with {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        report = json.loads(results.read_text())
        steps = {
            n: Step(n, s["ok"], s["data"] or {}, s["error"], s["wire"] or [])
            for n, s in report["steps"].items()
        }
        yield JsRun(endpoint, bucket, workdir, inputs, report["node"], steps, verifier)
    finally:
        empty_bucket(verifier, bucket)
        verifier.close()
        collect_leaked_sockets()


def test_create_bucket_twice(js_run: JsRun) -> None:
    data = js_run.step("create_bucket").result()
    assert data["status"] == 200
    assert data["again"]["name"] == "BucketAlreadyOwnedByYou"
    assert data["again"]["status"] == 409
    js_run.verifier.head_bucket(Bucket=js_run.bucket)


@pytest.mark.parametrize(
    ("name", "key"),
    [("put_file_stream", "stream/file.bin"), ("put_readable", "stream/readable.bin")],
)
def test_streamed_put_is_aws_chunked_with_crc32_trailer(js_run: JsRun, name: str, key: str) -> None:
    step = js_run.step(name)
    data = step.result()
    data_in = js_run.inputs.stream
    [put] = step.requests("PUT")
    framing = {
        h: put.get(h)
        for h in (
            "content-encoding",
            "x-amz-content-sha256",
            "x-amz-trailer",
            "x-amz-decoded-content-length",
        )
    }
    assert framing == {
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data_in)),
    }, step.describe()
    assert data["etag"] == _md5_etag(data_in)
    assert data["crc32"] == _crc32_b64(data_in)
    assert _boto3_sha(js_run.verifier, js_run.bucket, key) == _sha(data_in)
    head = js_run.verifier.head_object(Bucket=js_run.bucket, Key=key)
    assert head["ContentLength"] == len(data_in)  # no aws-chunked framing stored
    assert head.get("ContentEncoding") in (None, "")


def test_put_buffer_and_head_object(js_run: JsRun) -> None:
    put = js_run.step("put_buffer")
    data = put.result()
    buf = js_run.inputs.buffer
    first = put.requests("PUT")[0]
    assert first.get("x-amz-checksum-crc32") == _crc32_b64(buf), put.describe()
    assert data["etag"] == _md5_etag(buf)
    assert data["crc32"] == _crc32_b64(buf)
    assert data["empty_etag"] == _md5_etag(b"")

    head = js_run.step("head_object").result()
    assert head["length"] == len(buf)
    assert head["etag"] == _md5_etag(buf)
    assert head["content_type"] == "application/x-js-test"
    assert head["metadata"] == {"origin": "js-sdk-v3", "note": "two words"}
    b3 = js_run.verifier.head_object(Bucket=js_run.bucket, Key="buffer.bin")
    assert b3["ETag"] == head["etag"] and b3["Metadata"] == head["metadata"]
    assert b3["LastModified"].isoformat().startswith(head["last_modified"][:19])
    assert _boto3_sha(js_run.verifier, js_run.bucket, "buffer.bin") == _sha(buf)
    assert js_run.verifier.get_object(Bucket=js_run.bucket, Key="empty.bin")["ContentLength"] == 0


def test_get_object_with_checksum_mode(js_run: JsRun) -> None:
    step = js_run.step("get_checksum")
    data = step.result()
    expect = {
        "file": js_run.inputs.stream,
        "readable": js_run.inputs.stream,
        "buffer": js_run.inputs.buffer,
        "empty": b"",
    }
    for which, body in expect.items():
        got = data[which]
        assert got["status"] == 200, which
        assert (got["sha256"], got["length"]) == (_sha(body), len(body)), which
        assert got["length_header"] == len(body), which
        assert got["etag"] == _md5_etag(body), which
        # the server returned the checksum and the SDK validated the body against it
        assert got["crc32"] == _crc32_b64(body), which
    assert all(r.get("x-amz-checksum-mode") == "ENABLED" for r in step.requests("GET"))


def test_ranged_get(js_run: JsRun) -> None:
    data = js_run.step("get_range").result()
    src = js_run.inputs.stream
    assert data["status"] == 206
    assert data["content_range"] == f"bytes 1000-70999/{len(src)}"
    assert (data["sha256"], data["length"]) == (_sha(src[1000:71000]), 70_000)
    tail = data["tail"]
    assert tail["status"] == 206
    assert tail["content_range"] == f"bytes {len(src) - 100}-{len(src) - 1}/{len(src)}"
    assert (tail["sha256"], tail["length"]) == (_sha(src[-100:]), 100)


def test_conditional_gets(js_run: JsRun) -> None:
    data = js_run.step("conditional_get").result()
    buf = js_run.inputs.buffer
    ranged = data["if_match_range"]
    assert ranged["status"] == 206
    assert (ranged["sha256"], ranged["length"]) == (_sha(buf[:10]), 10)
    assert ranged["crc32"] is None  # a whole-object checksum never comes with a range
    assert data["if_none_match"]["status"] == 304
    assert data["if_match_wrong"]["name"] == "PreconditionFailed"
    assert data["if_match_wrong"]["status"] == 412


def test_list_objects_v2_prefix_delimiter_pagination(js_run: JsRun) -> None:
    data = js_run.step("list").result()
    pages = [(p["keys"], p["prefixes"]) for p in data["pages"]]
    assert pages == [(list(k), list(p)) for k, p in DELIMITED_PAGES]
    assert [p["truncated"] for p in data["pages"]] == [True, True, False]
    assert [p["key_count"] for p in data["pages"]] == [2, 2, 2]

    ordered = sorted(LIST_KEYS, key=lambda k: k.encode())
    assert [o["key"] for o in data["recursive"]] == ordered
    assert data["recursive_pages"] == 3  # 7 keys, 3 a page
    for o in data["recursive"]:
        body = f"listed {o['key']}\n".encode()
        assert (o["size"], o["etag"]) == (len(body), _md5_etag(body)), o["key"]


def test_managed_multipart_upload(js_run: JsRun) -> None:
    step = js_run.step("multipart_upload")
    data = step.result()
    big = js_run.inputs.big
    etag = _multipart_etag(big, PART)
    assert etag.endswith('-5"')
    assert data["etag"] == data["head_etag"] == data["get_etag"] == etag
    assert data["head_length"] == len(big)
    # the validating download went to a file: byte-exact
    assert sha256_file(js_run.workdir / "out/multipart.bin") == _sha(big)
    assert _boto3_sha(js_run.verifier, js_run.bucket, "big/multipart.bin") == _sha(big)
    assert data["get_crc32"] is None or data["get_crc32"].endswith("-5")

    creates = [ex["headers"] for ex in step.wire if "uploads" in ex["query"]]
    assert [c.get("x-amz-checksum-algorithm") for c in creates] == ["CRC32"], step.describe()
    parts = [ex for ex in step.wire if ex["query"].get("x-id") == "UploadPart"]
    assert sorted(int(ex["query"]["partNumber"]) for ex in parts) == [1, 2, 3, 4, 5]
    for ex, n in ((ex, int(ex["query"]["partNumber"])) for ex in parts):
        piece = big[(n - 1) * PART : n * PART]
        assert ex["headers"].get("x-amz-checksum-crc32") == _crc32_b64(piece), n
    uploads = js_run.verifier.list_multipart_uploads(Bucket=js_run.bucket)
    assert uploads.get("Uploads", []) == []


def test_copy_object(js_run: JsRun) -> None:
    data = js_run.step("copy_object").result()
    buf = js_run.inputs.buffer
    assert data["status"] == 200
    assert data["etag"] == data["head_etag"] == _md5_etag(buf)
    assert data["head_length"] == len(buf)
    assert data["head_metadata"] == {"origin": "js-sdk-v3", "note": "two words"}
    assert (data["get"]["sha256"], data["get"]["crc32"]) == (_sha(buf), _crc32_b64(buf))
    replaced = data["replaced"]
    assert replaced["etag"] == replaced["head_etag"] == _md5_etag(buf)
    assert replaced["content_type"] == "text/x-replaced"
    assert replaced["metadata"] == {"origin": "replaced"}
    for key in ("copy/of buffer+1.bin", "copy/replaced.bin"):
        assert _boto3_sha(js_run.verifier, js_run.bucket, key) == _sha(buf), key


def test_delete_objects_with_crc32(js_run: JsRun) -> None:
    step = js_run.step("delete_objects")
    data = step.result()
    [post] = step.requests("POST")
    assert "x-amz-checksum-crc32" in post and "content-md5" not in post, step.describe()
    assert data["deleted"] == sorted([*LIST_KEYS, "list/never-existed.txt"])
    assert data["errors"] == [] and data["left"] == []
    listed = js_run.verifier.list_objects_v2(Bucket=js_run.bucket, Prefix="list/")
    assert listed["KeyCount"] == 0


def test_presigned_get_with_fetch(js_run: JsRun) -> None:
    data = js_run.step("presigned_get").result()
    buf = js_run.inputs.buffer
    assert "X-Amz-Signature" in data["url_query"]
    assert data["status"] == 200
    assert (data["sha256"], data["length"]) == (_sha(buf), len(buf))
    assert data["etag"] == _md5_etag(buf)
    assert (data["missing_status"], data["missing_code"]) == (404, "NoSuchKey")


def test_presigned_put_with_fetch(js_run: JsRun) -> None:
    data = js_run.step("presigned_put").result()
    # signed before any body existed: the CRC32 of an empty body, which S3 ignores
    assert "x-amz-checksum-crc32" in data["url_query"]
    assert data["status"] == 200, data["response_text"]
    body = b"uploaded through a presigned PUT URL\n" * 1000
    assert (data["sha256"], data["length"]) == (_sha(body), len(body))
    assert data["etag"] == _md5_etag(body)
    assert data["get"]["sha256"] == _sha(body)  # and no stale checksum failed validation
    assert data["get"]["crc32"] in (None, _crc32_b64(body))
    assert _boto3_sha(js_run.verifier, js_run.bucket, "presigned/put.txt") == _sha(body)


def test_error_names(js_run: JsRun) -> None:
    data = js_run.step("errors").result()
    assert (data["get_missing"]["name"], data["get_missing"]["status"]) == ("NoSuchKey", 404)
    assert (data["head_missing"]["name"], data["head_missing"]["status"]) == ("NotFound", 404)
    missing_bucket = data["get_missing_bucket"]
    assert (missing_bucket["name"], missing_bucket["status"]) == ("NoSuchBucket", 404)


def test_bad_credentials(js_run: JsRun) -> None:
    data = js_run.step("bad_credentials").result()
    for which in ("bad_secret_get", "bad_secret_put"):
        assert (data[which]["name"], data[which]["status"]) == ("SignatureDoesNotMatch", 403)
    assert (data["bad_key_list"]["name"], data["bad_key_list"]["status"]) == (
        "InvalidAccessKeyId",
        403,
    )
    listed = js_run.verifier.list_objects_v2(Bucket=js_run.bucket, Prefix="forged")
    assert listed["KeyCount"] == 0  # the forged PUT stored nothing
