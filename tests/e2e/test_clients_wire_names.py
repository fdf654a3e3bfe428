"""Every XML element the gateway sends is one the SDKs know (botocore's S3 service model).

A misspelt element is silently dropped by every SDK-based client (boto3, the aws CLI):
``GetObjectAttributes`` once sent ``<TotalPartsCount>`` where the wire name is
``<PartsCount>``, and the CLI showed no part count. This drives a broad sweep of
operations through boto3 against the real cluster and walks each 2xx XML body against
the operation's output shape (wire names, list members), failing on any unknown element.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests.e2e.conftest import empty_bucket

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def _members(shape: Any) -> dict[str, Any]:
    """Body members of a structure shape by wire name."""
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        if member.serialization.get("location") in ("header", "headers", "statusCode"):
            continue
        out[member.serialization.get("name", name)] = member
    return out


def _walk(el: ET.Element, shape: Any, path: str, problems: list[str]) -> None:
    if shape.type_name == "list":
        if shape.serialization.get("flattened"):
            shape = shape.member
        else:
            want = shape.member.serialization.get("name", "member")
            for child in el:
                tag = child.tag.rsplit("}", 1)[-1]
                if tag != want:
                    problems.append(f"{path}/{tag}: expected list member <{want}>")
                else:
                    _walk(child, shape.member, f"{path}/{tag}", problems)
            return
    if shape.type_name != "structure":
        return
    known = _members(shape)
    for child in el:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag not in known:
            problems.append(f"{path}/{tag}: not in {shape.name}")
        else:
            _walk(child, known[tag], f"{path}/{tag}", problems)


def test_xml_element_names_match_the_sdk_model(verifier: Any) -> None:
    s3 = verifier
    problems: list[str] = []
    seen: set[str] = set()

    def check(http_response: Any, model: Any, **_: Any) -> None:
        body = http_response.content
        if http_response.status_code >= 300 or not body.lstrip().startswith(b"<"):
            return
        seen.add(model.name)
        out = model.output_shape
        if out is None:
            problems.append(f"{model.name}: an XML body but no output shape")
            return
        payload = out.serialization.get("payload")
        if payload:
            out = out.members[payload]
        _walk(ET.fromstring(body), out, model.name, problems)

    s3.meta.events.register("after-call.s3", check)
    b = f"e2e-wire-{uuid.uuid4().hex[:10]}"
    try:
        s3.create_bucket(Bucket=b)
        s3.list_buckets()
        s3.get_bucket_location(Bucket=b)
        s3.get_bucket_acl(Bucket=b)
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        s3.get_bucket_versioning(Bucket=b)
        s3.put_object(Bucket=b, Key="a/b c", Body=b"x" * 10, Tagging="t=1")
        s3.put_object(Bucket=b, Key="a/b c", Body=b"y" * 10)
        s3.delete_object(Bucket=b, Key="a/b c")
        s3.put_object(Bucket=b, Key="k", Body=b"x" * 10, ChecksumAlgorithm="SHA256")
        s3.list_objects(Bucket=b)
        s3.list_objects(Bucket=b, Delimiter="/", MaxKeys=1)
        s3.list_objects_v2(Bucket=b, Delimiter="/", FetchOwner=True)
        s3.list_object_versions(Bucket=b)
        s3.list_object_versions(Bucket=b, MaxKeys=1)
        s3.put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
        s3.get_object_tagging(Bucket=b, Key="k")
        s3.get_object_acl(Bucket=b, Key="k")
        attrs = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
        s3.get_object_attributes(Bucket=b, Key="k", ObjectAttributes=attrs)
        s3.copy_object(Bucket=b, Key="k2", CopySource={"Bucket": b, "Key": "k"})
        up = s3.create_multipart_upload(Bucket=b, Key="mp", ChecksumAlgorithm="CRC32")
        uid = up["UploadId"]
        p1 = s3.upload_part(
            Bucket=b, Key="mp", UploadId=uid, PartNumber=1, Body=b"z" * (5 * MiB),
            ChecksumAlgorithm="CRC32",
        )  # fmt: skip
        p2 = s3.upload_part_copy(
            Bucket=b, Key="mp", UploadId=uid, PartNumber=2, CopySource={"Bucket": b, "Key": "k"}
        )
        s3.list_multipart_uploads(Bucket=b)
        s3.list_parts(Bucket=b, Key="mp", UploadId=uid)
        parts = [
            {"PartNumber": 1, "ETag": p1["ETag"], "ChecksumCRC32": p1["ChecksumCRC32"]},
            {
                "PartNumber": 2,
                "ETag": p2["CopyPartResult"]["ETag"],
                "ChecksumCRC32": p2["CopyPartResult"]["ChecksumCRC32"],  # S3 requires each
            },
        ]
        s3.complete_multipart_upload(
            Bucket=b, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}
        )
        got = s3.get_object_attributes(Bucket=b, Key="mp", ObjectAttributes=attrs)
        assert got["ObjectParts"]["TotalPartsCount"] == 2
        s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
        s3.get_bucket_tagging(Bucket=b)
        rule = {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "MaxAgeSeconds": 3}
        s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [rule]})
        s3.get_bucket_cors(Bucket=b)
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k2"}]})
    finally:
        s3.meta.events.unregister("after-call.s3", check)
        empty_bucket(s3, b)
    assert problems == []
    assert len(seen) >= 19, sorted(seen)
