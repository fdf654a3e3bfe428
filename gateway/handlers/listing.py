"""Listing handlers: ListBuckets, ListObjects (v1), ListObjectsV2, ListObjectVersions.

The catalog pages the ordered index (prefix, delimiter, markers, continuation tokens); this
module only converts pages into the XML builders' values. v1 returns NextMarker only with
a delimiter (as S3; clients fall back to the last key otherwise). ``encoding-type=url`` is
applied by the builders only when the request asked for it. Object listings check access
with ``Services.object_bucket`` and name the checked bucket incarnation in their query
(``Services.query_in``), so a stale cached bucket record never lists a re-created bucket.
"""

from __future__ import annotations

from starlette.responses import Response

from gateway import operations as op
from gateway import xml
from gateway.context import RequestContext, Services, xml_response
from gateway.handlers.object import timestamp
from metadata.api import (
    ListBucketsQuery,
    ListObjectsQuery,
    ListObjectsV2Query,
    ListObjectVersionsQuery,
)
from metadata.fsm.records import BucketRecord
from metadata.fsm.results import ListObjectsPage, ListVersionsPage, ObjectSummary

__all__ = ["list_buckets", "list_object_versions", "list_objects", "list_objects_v2"]


def _entry(s: ObjectSummary) -> xml.ObjectEntry:
    return xml.ObjectEntry(
        s.key,
        timestamp(s.last_modified_ms),
        s.etag,
        s.size,
        s.storage_class or "STANDARD",
        xml.Owner(s.owner, s.owner),
    )


async def list_buckets(sv: Services, ctx: RequestContext, o: op.ListBuckets) -> Response:
    principal = ctx.principal
    assert principal is not None
    owner = None if principal.is_admin else principal.user
    found = await sv.catalog.query(ListBucketsQuery(owner))
    assert isinstance(found, tuple)
    buckets = [b for b in found if isinstance(b, BucketRecord)]
    if o.prefix:
        buckets = [b for b in buckets if b.name.startswith(o.prefix)]
    if o.continuation_token:
        buckets = [b for b in buckets if b.name > o.continuation_token]
    entries = [xml.BucketEntry(b.name, timestamp(b.created_ms), sv.region) for b in buckets]
    owner_el = xml.Owner(principal.user, principal.user)
    body = xml.list_all_my_buckets_result(owner_el, entries, prefix=o.prefix)
    return xml_response(body)


async def list_objects(sv: Services, ctx: RequestContext, o: op.ListObjects) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    page = await sv.query_in(
        ctx, rec, ListObjectsQuery(o.bucket, o.prefix, o.delimiter or "", o.marker, o.max_keys)
    )
    assert isinstance(page, ListObjectsPage)
    result = xml.ListPage(
        [_entry(s) for s in page.contents],
        page.common_prefixes,
        page.is_truncated,
        page.next_marker if o.delimiter else None,
    )
    return xml_response(xml.list_objects_result(o, result, xml.Owner(ctx.owner, ctx.owner)))


async def list_objects_v2(sv: Services, ctx: RequestContext, o: op.ListObjectsV2) -> Response:
    rec = await sv.object_bucket(ctx, o.bucket)
    page = await sv.query_in(
        ctx,
        rec,
        ListObjectsV2Query(
            o.bucket,
            prefix=o.prefix,
            delimiter=o.delimiter or "",
            start_after=o.start_after,
            continuation_token=o.continuation_token,
            max_keys=o.max_keys,
        ),
    )
    assert isinstance(page, ListObjectsPage)
    result = xml.ListPage(
        [_entry(s) for s in page.contents],
        page.common_prefixes,
        page.is_truncated,
        page.next_continuation_token,
    )
    return xml_response(xml.list_objects_v2_result(o, result, xml.Owner(ctx.owner, ctx.owner)))


async def list_object_versions(
    sv: Services, ctx: RequestContext, o: op.ListObjectVersions
) -> Response:
    """Every version and delete marker, newest first within a key, with its real version id
    (``null`` for objects written while the bucket was unversioned)."""
    rec = await sv.object_bucket(ctx, o.bucket)
    page = await sv.query_in(
        ctx,
        rec,
        ListObjectVersionsQuery(
            o.bucket,
            prefix=o.prefix,
            delimiter=o.delimiter or "",
            key_marker=o.key_marker,
            version_id_marker=o.version_id_marker,
            max_keys=o.max_keys,
        ),
    )
    assert isinstance(page, ListVersionsPage)
    entries = [
        xml.VersionEntry(
            key=v.key,
            version_id=v.version_id,
            is_latest=v.is_latest,
            is_delete_marker=v.is_delete_marker,
            last_modified=timestamp(v.last_modified_ms),
            etag=v.etag,
            size=v.size,
            storage_class=v.storage_class or "STANDARD",
            owner=xml.Owner(v.owner, v.owner),
        )
        for v in page.versions
    ]
    body = xml.list_versions_result(
        o,
        entries,
        page.common_prefixes,
        is_truncated=page.is_truncated,
        next_key_marker=page.next_key_marker,
        next_version_id_marker=page.next_version_id_marker,
        owner=xml.Owner(ctx.owner, ctx.owner),
    )
    return xml_response(body)
