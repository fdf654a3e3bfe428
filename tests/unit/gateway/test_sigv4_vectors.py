"""SigV4 against published vectors: the AWS SigV4 test suite and the S3 docs examples."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway import sigv4
from gateway.sigv4 import PayloadMode, RequestParts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sigv4"
SUITE: dict[str, Any] = json.loads((FIXTURES / "aws_sigv4_test_suite.json").read_text())
DOCS: dict[str, Any] = json.loads((FIXTURES / "s3_docs_examples.json").read_text())
DOCS_NOW = datetime(2013, 5, 24, tzinfo=UTC)


def _suite_headers(case: dict[str, Any]) -> list[tuple[str, str]]:
    base = [("Host", "example.amazonaws.com"), ("X-Amz-Date", SUITE["amz_date"])]
    return base + [(k, v) for k, v in case["headers"]]


def _suite_signature(case: dict[str, Any]) -> tuple[str, bytes]:
    req = RequestParts.build(case["method"], case["path"], case["query"], _suite_headers(case))
    signed = tuple(case["signed_headers"].split(";"))
    block = sigv4.canonical_headers(req.headers, signed)
    creq = sigv4.canonical_request(
        case["method"],
        sigv4.canonical_uri(case["path"]),
        sigv4.canonical_query(case["query"]),
        block,
        case["signed_headers"],
        hashlib.sha256(case["body"].encode()).hexdigest(),
    )
    key = sigv4.derive_signing_key(SUITE["secret"], "20150830", SUITE["region"], SUITE["service"])
    scope = f"20150830/{SUITE['region']}/{SUITE['service']}/aws4_request"
    sts = sigv4.string_to_sign(SUITE["amz_date"], scope, creq)
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest(), block


@pytest.mark.parametrize("case", SUITE["cases"], ids=lambda c: c["name"])
def test_aws_sigv4_suite(case: dict[str, Any]) -> None:
    signature, block = _suite_signature(case)
    assert signature == case["signature"]
    if "canonical_headers" in case:
        assert block.decode() == case["canonical_headers"]
    if "canonical_query" in case:
        assert sigv4.canonical_query(case["query"]) == case["canonical_query"]


# botocore's header map cannot hold a repeated header as sent: that case is checked above.
_BOTOCORE_CASES = [c for c in SUITE["cases"] if c["name"] != "get-header-key-duplicate"]


@pytest.mark.parametrize("case", _BOTOCORE_CASES, ids=lambda c: c["name"])
def test_aws_sigv4_suite_agrees_with_botocore(case: dict[str, Any]) -> None:
    """botocore's generic SigV4Auth is an independent oracle for the same vectors.

    The generic (non-S3) signer encodes the path itself, so it gets the decoded path.
    """
    url = f"https://example.amazonaws.com{unquote(case['path'])}"
    if case["query"]:
        url += "?" + case["query"]
    request = AWSRequest(method=case["method"], url=url, data=case["body"].encode())
    request.headers["X-Amz-Date"] = SUITE["amz_date"]
    for k, v in case["headers"]:
        request.headers[k] = v
    request.context["timestamp"] = SUITE["amz_date"]
    creds = Credentials(SUITE["access_key"], SUITE["secret"])
    signer = SigV4Auth(creds, SUITE["service"], SUITE["region"])
    creq = signer.canonical_request(request)
    sts = signer.string_to_sign(request, creq)
    assert signer.signature(sts, request) == case["signature"]


def test_signing_key_derivation_matches_docs() -> None:
    key = sigv4.derive_signing_key(DOCS["secret"], "20130524", "us-east-1", "s3")
    assert key.hex() == DOCS["signing_key_hex"]


@pytest.mark.parametrize("case", DOCS["header_examples"], ids=lambda c: c["name"])
def test_s3_docs_header_examples_verify(case: dict[str, Any]) -> None:
    auth = (
        f"AWS4-HMAC-SHA256 Credential={DOCS['access_key']}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={case['signed_headers']},Signature={case['signature']}"
    )
    headers = [*case["headers"], ("Authorization", auth)]
    req = RequestParts.build(case["method"], case["path"], case["query"], headers)
    ctx = sigv4.verify(req, {DOCS["access_key"]: DOCS["secret"]}.get, DOCS_NOW)
    assert ctx.seed_signature == case["signature"]
    assert ctx.payload_mode is PayloadMode.SHA256
    assert ctx.signing_key.hex() == DOCS["signing_key_hex"]
    verifier = ctx.payload_verifier()
    assert verifier is not None
    verifier.update(case.get("body", "").encode())
    verifier.finish()


@pytest.mark.parametrize("case", DOCS["header_examples"], ids=lambda c: c["name"])
def test_s3_docs_header_examples_sign(case: dict[str, Any]) -> None:
    """The client-side signer reproduces the documented signatures."""
    drop = {"x-amz-date", "x-amz-content-sha256"}
    headers = [(k, v) for k, v in case["headers"] if k.lower() not in drop]
    payload = dict((k.lower(), v) for k, v in case["headers"])["x-amz-content-sha256"]
    out = sigv4.sign_request(
        case["method"],
        case["path"],
        case["query"],
        headers,
        access_key=DOCS["access_key"],
        secret=DOCS["secret"],
        region="us-east-1",
        now=DOCS_NOW,
        payload_hash=payload,
    )
    authorization = dict(out)["Authorization"]
    assert authorization.endswith(
        f"SignedHeaders={case['signed_headers']}, Signature={case['signature']}"
    )


def test_s3_docs_presigned_url() -> None:
    p = DOCS["presigned"]
    query = sigv4.presign_url(
        p["method"],
        p["path"],
        "",
        p["host"],
        access_key=DOCS["access_key"],
        secret=DOCS["secret"],
        region="us-east-1",
        now=DOCS_NOW,
        expires_s=p["expires_s"],
    )
    assert query == p["query"]
    req = RequestParts.build(p["method"], p["path"], p["query"], [("Host", p["host"])])
    ctx = sigv4.verify(req, {DOCS["access_key"]: DOCS["secret"]}.get, DOCS_NOW)
    assert ctx.is_presigned
    assert ctx.payload_mode is PayloadMode.UNSIGNED
    assert ctx.seed_signature == p["signature"]


def test_s3_docs_chunked_seed_signature() -> None:
    c = DOCS["chunked"]
    auth = (
        f"AWS4-HMAC-SHA256 Credential={DOCS['access_key']}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={c['signed_headers']},Signature={c['seed_signature']}"
    )
    req = RequestParts.build(c["method"], c["path"], "", [*c["headers"], ("Authorization", auth)])
    ctx = sigv4.verify(req, {DOCS["access_key"]: DOCS["secret"]}.get, DOCS_NOW)
    assert ctx.payload_mode is PayloadMode.STREAMING_SIGNED
    assert ctx.seed_signature == c["seed_signature"]
    assert ctx.scope == "20130524/us-east-1/s3/aws4_request"
    prev = ctx.seed_signature
    sizes = [*c["chunk_sizes"], 0]
    expected = [*c["chunk_signatures"], c["final_signature"]]
    for size, want in zip(sizes, expected, strict=True):
        data = c["fill_byte"].encode() * size
        prev = sigv4.chunk_signature(
            ctx.signing_key, ctx.amz_date, ctx.scope, prev, hashlib.sha256(data).hexdigest()
        )
        assert prev == want
