"""S3 XML request bodies parsed into typed values (hardened, via ``gateway.xml.tree``).

Owns: ``parse_complete_multipart_upload``, ``parse_delete``, ``parse_tagging``,
``parse_cors_configuration``, ``parse_versioning_configuration``,
``parse_create_bucket_configuration`` and ``parse_access_control_policy``.

Invariants: a malformed document is MalformedXML; a well-formed but semantically invalid
one raises the specific S3 error (InvalidArgument, InvalidPartOrder, InvalidTag,
InvalidRequest). Keys and tag values are kept verbatim (not stripped). Nothing but
``S3Error`` escapes.

Pure: imports only the stdlib, ``gateway.operations``, ``gateway.errors`` and
``gateway.xml`` siblings. Must not import starlette or anything doing I/O.
"""

from __future__ import annotations

import re

from gateway import operations as op
from gateway.errors import S3Error
from gateway.xml.tree import MAX_LIST_XML_BYTES, parse_document
from gateway.xml.values import (
    AclGrant,
    CompletedPart,
    CorsConfiguration,
    CorsRule,
    DeleteRequest,
    ObjectIdentifier,
    VersioningConfiguration,
)
from gateway.xml.writer import bare_etag

__all__ = [
    "parse_access_control_policy",
    "parse_complete_multipart_upload",
    "parse_cors_configuration",
    "parse_create_bucket_configuration",
    "parse_delete",
    "parse_tagging",
    "parse_versioning_configuration",
]

_PART_RE = re.compile(r"[0-9]{1,5}")
_PART_CHECKSUMS = frozenset(
    f"Checksum{a}" for a in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
)


def parse_complete_multipart_upload(body: bytes) -> tuple[CompletedPart, ...]:
    """CompleteMultipartUpload body -> parts in strictly ascending part-number order.

    Raises:
        S3Error: MalformedXML; InvalidArgument (part number out of 1..10000);
            InvalidPartOrder (not strictly ascending).
    """
    root = parse_document(body, "CompleteMultipartUpload", MAX_LIST_XML_BYTES)
    nodes = root.all("Part")
    if not nodes or len(nodes) > 10000:
        raise S3Error.malformed_xml("between 1 and 10000 parts required")
    parts: list[CompletedPart] = []
    for node in nodes:
        fields = {c.name: c.value() for c in reversed(node.children)}  # first one wins
        number = fields.get("PartNumber")
        etag = fields.get("ETag")
        if number is None or etag is None:
            raise S3Error.malformed_xml("Part needs PartNumber and ETag")
        number = number.strip()
        if not _PART_RE.fullmatch(number) or not 1 <= int(number) <= 10000:
            raise S3Error.invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
                "PartNumber",
                number,
            )
        checksums = tuple(
            op.ChecksumHeader(name[8:], text.strip())
            for name, text in fields.items()
            if name in _PART_CHECKSUMS and text.strip()
        )
        part = CompletedPart(int(number), bare_etag(etag), checksums)
        if parts and part.part_number <= parts[-1].part_number:
            raise S3Error.invalid_part_order()
        parts.append(part)
    return tuple(parts)


def parse_delete(body: bytes, max_objects: int = 1000) -> DeleteRequest:
    """DeleteObjects body -> keys (verbatim, not stripped) and the Quiet flag."""
    root = parse_document(body, "Delete", MAX_LIST_XML_BYTES)
    nodes = root.all("Object")
    if not nodes or len(nodes) > max_objects:
        raise S3Error.malformed_xml(f"between 1 and {max_objects} objects required")
    objects: list[ObjectIdentifier] = []
    for node in nodes:
        key = node.text_of("Key", strip=False)
        if key is None:
            raise S3Error.malformed_xml("Object needs a Key")
        objects.append(ObjectIdentifier(key, node.text_of("VersionId") or None))
    quiet = (root.text_of("Quiet") or "").lower() == "true"
    return DeleteRequest(tuple(objects), quiet)


def parse_tagging(body: bytes, max_tags: int = 10) -> tuple[op.Tag, ...]:
    """Tagging body -> tags (10 for objects, 50 for buckets); InvalidTag on limits."""
    root = parse_document(body, "Tagging")
    tag_set = root.first("TagSet")
    if tag_set is None:
        raise S3Error.malformed_xml("TagSet required")
    tags: list[op.Tag] = []
    for node in tag_set.all("Tag"):
        key = node.text_of("Key", strip=False)
        if key is None:
            raise S3Error.malformed_xml("Tag needs a Key")
        tags.append(op.Tag(key, node.text_of("Value", strip=False) or ""))
    return op.validate_tags(tags, max_tags)


_CORS_METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")


def parse_cors_configuration(body: bytes) -> CorsConfiguration:
    """CORSConfiguration body (1..100 rules, each with methods and origins)."""
    root = parse_document(body, "CORSConfiguration")
    nodes = root.all("CORSRule")
    if not nodes or len(nodes) > 100:
        raise S3Error.malformed_xml("between 1 and 100 CORSRule required")
    rules: list[CorsRule] = []
    for node in nodes:
        methods = tuple(c.value().strip() for c in node.all("AllowedMethod"))
        origins = tuple(c.value().strip() for c in node.all("AllowedOrigin"))
        if not methods or not origins:
            raise S3Error.malformed_xml("CORSRule needs AllowedMethod and AllowedOrigin")
        for m in methods:
            if m not in _CORS_METHODS:
                raise S3Error.invalid_request(
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )
        for o in origins:
            if o.count("*") > 1:
                raise S3Error.invalid_request(
                    f'AllowedOrigin "{o}" can not have more than one wildcard.'
                )
        max_age_text = node.text_of("MaxAgeSeconds")
        max_age: int | None = None
        if max_age_text is not None:
            if not max_age_text.isascii() or not max_age_text.isdigit() or len(max_age_text) > 10:
                raise S3Error.malformed_xml("MaxAgeSeconds must be an integer")
            max_age = int(max_age_text)
        rules.append(
            CorsRule(
                allowed_methods=methods,
                allowed_origins=origins,
                allowed_headers=tuple(c.value().strip() for c in node.all("AllowedHeader")),
                expose_headers=tuple(c.value().strip() for c in node.all("ExposeHeader")),
                max_age_seconds=max_age,
                id=node.text_of("ID") or None,
            )
        )
    return CorsConfiguration(tuple(rules))


def parse_versioning_configuration(body: bytes) -> VersioningConfiguration:
    """VersioningConfiguration body; Status must be Enabled or Suspended when present."""
    root = parse_document(body, "VersioningConfiguration")
    status = root.text_of("Status")
    mfa = root.text_of("MfaDelete")
    if status is not None and status not in ("Enabled", "Suspended"):
        raise S3Error.malformed_xml("Status must be Enabled or Suspended")
    if mfa is not None and mfa not in ("Enabled", "Disabled"):
        raise S3Error.malformed_xml("MfaDelete must be Enabled or Disabled")
    return VersioningConfiguration(status or None, mfa or None)


def parse_create_bucket_configuration(body: bytes) -> str | None:
    """CreateBucket body -> LocationConstraint (None for an empty body or element)."""
    if not body.strip():
        return None
    root = parse_document(body, "CreateBucketConfiguration")
    return root.text_of("LocationConstraint") or None


_PERMISSIONS = frozenset({"FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP"})


def parse_access_control_policy(body: bytes) -> tuple[AclGrant, ...]:
    """AccessControlPolicy body (PutBucketAcl / PutObjectAcl) -> its grants."""
    root = parse_document(body, "AccessControlPolicy")
    acl = root.first("AccessControlList")
    if acl is None:
        raise S3Error.malformed_xml("AccessControlList required")
    grants: list[AclGrant] = []
    for node in acl.all("Grant"):
        grantee = node.first("Grantee")
        permission = node.text_of("Permission")
        if grantee is None or permission not in _PERMISSIONS or permission is None:
            raise S3Error.malformed_xml("Grant needs a Grantee and a valid Permission")
        kind = grantee.attrs.get("type", "")
        who = (
            grantee.text_of("ID") or grantee.text_of("URI") or grantee.text_of("EmailAddress") or ""
        )
        if kind not in ("CanonicalUser", "Group", "AmazonCustomerByEmail") or not who:
            raise S3Error.malformed_xml("Grantee needs xsi:type and an ID, URI or EmailAddress")
        grants.append(AclGrant(kind, who, permission))
    return tuple(grants)
