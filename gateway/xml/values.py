"""The typed values S3 XML documents carry, in both directions.

Owns: the frozen dataclasses that response builders take (``Owner``, ``BucketEntry``,
``ObjectEntry``, ``VersionEntry``, ``ListPage``, ``UploadEntry``, ``PartEntry``,
``DeletedEntry``, ``DeleteError``) and that request-body parsers return
(``CompletedPart``, ``ObjectIdentifier``, ``DeleteRequest``, ``CorsRule``,
``CorsConfiguration``, ``VersioningConfiguration``, ``AclGrant``), plus CORS rule
matching (at most one ``*`` per pattern).

Pure: imports only the stdlib and ``gateway.operations``. Must not import starlette or
anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway import operations as op

__all__ = [
    "AclGrant",
    "BucketEntry",
    "CompletedPart",
    "CorsConfiguration",
    "CorsRule",
    "DeleteError",
    "DeleteRequest",
    "DeletedEntry",
    "ListPage",
    "ObjectEntry",
    "ObjectIdentifier",
    "Owner",
    "PartEntry",
    "UploadEntry",
    "VersionEntry",
    "VersioningConfiguration",
]


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class BucketEntry:
    name: str
    creation_date: datetime
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    key: str
    last_modified: datetime
    etag: str  # quoted or bare; emitted quoted
    size: int
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One ``<Version>`` (or, with ``is_delete_marker``, ``<DeleteMarker>``) entry."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    last_modified: datetime
    etag: str = ""
    size: int = 0
    storage_class: str = "STANDARD"
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing; ``next_marker`` is NextMarker (v1), NextContinuationToken
    (v2) or NextKeyMarker (versions)."""

    contents: Sequence[ObjectEntry] = ()
    common_prefixes: Sequence[str] = ()
    is_truncated: bool = False
    next_marker: str | None = None


@dataclass(frozen=True, slots=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: datetime
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class PartEntry:
    part_number: int
    last_modified: datetime
    etag: str
    size: int
    checksums: tuple[op.ChecksumHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class DeletedEntry:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    key: str
    code: str
    message: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    part_number: int
    etag: str  # bare (quotes removed)
    checksums: tuple[op.ChecksumHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    objects: tuple[ObjectIdentifier, ...]
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class CorsRule:
    allowed_methods: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None


def _wildcard_match(pattern: str, value: str) -> bool:
    """S3 CORS patterns: at most one ``*``, matching any run of characters."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


@dataclass(frozen=True, slots=True)
class CorsConfiguration:
    rules: tuple[CorsRule, ...]

    def find_rule(
        self, origin: str, method: str, request_headers: Sequence[str] = ()
    ) -> CorsRule | None:
        """The first rule allowing ``origin``, ``method`` and every requested header."""
        for rule in self.rules:
            if method not in rule.allowed_methods:
                continue
            if not any(_wildcard_match(o, origin) for o in rule.allowed_origins):
                continue
            allowed = [h.lower() for h in rule.allowed_headers]
            if all(any(_wildcard_match(a, h.lower()) for a in allowed) for h in request_headers):
                return rule
        return None


@dataclass(frozen=True, slots=True)
class VersioningConfiguration:
    status: str | None = None  # Enabled | Suspended | None (never configured)
    mfa_delete: str | None = None


@dataclass(frozen=True, slots=True)
class AclGrant:
    grantee_type: str  # CanonicalUser | Group | AmazonCustomerByEmail
    grantee: str  # ID, URI or email
    permission: str
