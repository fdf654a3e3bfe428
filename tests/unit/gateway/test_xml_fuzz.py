"""Fuzzing the XML request parsers: only S3Error escapes; builders always parse back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import operations as op
from gateway import xml as sx
from gateway.errors import S3Error

PARSERS: list[Callable[[bytes], object]] = [
    sx.parse_complete_multipart_upload,
    sx.parse_delete,
    sx.parse_tagging,
    sx.parse_cors_configuration,
    sx.parse_versioning_configuration,
    sx.parse_create_bucket_configuration,
    sx.parse_access_control_policy,
]
NAMES = [
    "CompleteMultipartUpload", "Part", "PartNumber", "ETag", "ChecksumCRC32", "Delete", "Object",
    "Key", "VersionId", "Quiet", "Tagging", "TagSet", "Tag", "Value", "CORSConfiguration",
    "CORSRule", "AllowedMethod", "AllowedOrigin", "AllowedHeader", "MaxAgeSeconds", "ID",
    "VersioningConfiguration", "Status", "MfaDelete", "CreateBucketConfiguration",
    "LocationConstraint", "AccessControlPolicy", "AccessControlList", "Grant", "Grantee",
    "Permission", "URI",
]  # fmt: skip
_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
    st.sampled_from(
        ["1", "0", "10001", "GET", "PATCH", "Enabled", "true", "*", "-1", "FULL_CONTROL"]
    ),
)


def _escape(t: str) -> str:
    return t.replace("&", "&amp;").replace("<", "&lt;")


_element = st.recursive(
    st.builds(lambda n, t: f"<{n}>{_escape(t)}</{n}>", st.sampled_from(NAMES), _text),
    lambda children: st.builds(
        lambda n, kids, ns: f"<{n}{ns}>{''.join(kids)}</{n}>",
        st.sampled_from(NAMES),
        st.lists(children, max_size=5),
        st.sampled_from(["", f' xmlns="{sx.NS}"', ' xmlns="urn:other"']),
    ),
    max_leaves=25,
)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200), st.sampled_from(PARSERS))
def test_random_bytes(body: bytes, parser: Callable[[bytes], object]) -> None:
    try:
        parser(body)
    except S3Error as e:
        assert e.status in (400, 501)


@settings(deadline=None, max_examples=600)
@given(_element, st.sampled_from(PARSERS))
def test_well_formed_but_wrong(doc: str, parser: Callable[[bytes], object]) -> None:
    try:
        parser(doc.encode("utf-8"))
    except S3Error as e:
        assert e.status == 400


_any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(deadline=None, max_examples=200)
@given(st.lists(_any_text, max_size=5), _any_text, st.booleans())
def test_builders_always_well_formed(keys: list[str], prefix: str, encode: bool) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    req = op.ListObjectsV2(
        bucket="bkt", prefix=prefix, delimiter="/", encoding_type="url" if encode else None
    )
    page = sx.ListPage([sx.ObjectEntry(k, t, "e", 1) for k in keys], [prefix], False, None)
    body = sx.list_objects_v2_result(req, page, sx.Owner("o"))
    text = body.decode("utf-8")
    xml_ok = all(
        (c >= "\x20" or c in "\t\n\r") and c not in "\ufffe\uffff" for c in "".join(keys) + prefix
    )
    if not xml_ok:  # S3-style character references for what XML 1.0 cannot carry
        text = text.replace("&#x", "&#38;#x")
    root = ET.fromstring(text)
    parsed = [e.text or "" for e in root.iter(f"{{{sx.NS}}}Key")]
    if encode:
        assert [unquote(k) for k in parsed] == keys
    elif xml_ok:
        assert parsed == keys


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1,
                max_size=20,
            ),
            st.text(
                alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20
            ),
        ),
        max_size=10,
        unique_by=lambda kv: kv[0],
    )
)
def test_tagging_round_trip(pairs: list[tuple[str, str]]) -> None:
    tags = tuple(op.Tag(k, v) for k, v in pairs)
    assert sx.parse_tagging(sx.tagging(tags)) == tags


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
            min_size=1,
            max_size=30,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_delete_keys_round_trip(keys: list[str]) -> None:
    body = (
        "<Delete>"
        + "".join(f"<Object><Key>{sx.escape(k)}</Key></Object>" for k in keys)
        + "</Delete>"
    )
    assert [o.key for o in sx.parse_delete(body.encode()).objects] == keys
