"""Routing of bucket-level requests (no key) to their typed S3 operations.

Owns: the bucket routing tables -- which sub-resource query parameters select which
operation for each method, the never-configured sub-resources (a 404 with their S3 code,
or an empty 200 document), the unsupported ones (``op.Unsupported``, answered 501) -- and
the listing parameters of ListObjects (v1/v2), ListObjectVersions and
ListMultipartUploads.

Invariant: DeleteObjects (``POST ?delete``) requires Content-MD5 or an
``x-amz-checksum-*`` (header or trailer), as S3 does. POST Object (browser form upload)
is ``op.Unsupported``.

Pure: raises only ``gateway.errors.S3Error``. Must not import starlette, asyncio or
anything doing I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway import operations as op
from gateway.errors import S3Error
from gateway.router import body, params
from gateway.router.request import Headers

__all__ = ["bucket_op"]

# GET of bucket sub-resources we never configure: AWS name, 404 code + message, or None
# and the root element of the empty 200 document.
_UNCONFIGURED: Mapping[str, tuple[str, str | None, str]] = {
    "lifecycle": (
        "GetBucketLifecycleConfiguration",
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
    ),
    "encryption": (
        "GetBucketEncryption",
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    "website": (
        "GetBucketWebsite",
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration",
    ),
    "replication": (
        "GetBucketReplication",
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    ),
    "object-lock": (
        "GetObjectLockConfiguration",
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    ),
    "ownershipControls": (
        "GetBucketOwnershipControls",
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
    ),
    "publicAccessBlock": (
        "GetPublicAccessBlock",
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    ),
    "policyStatus": (
        "GetBucketPolicyStatus",
        "NoSuchBucketPolicy",
        "The bucket policy does not exist",
    ),
    "logging": ("GetBucketLogging", None, "BucketLoggingStatus"),
    "notification": ("GetBucketNotificationConfiguration", None, "NotificationConfiguration"),
    "requestPayment": ("GetBucketRequestPayment", None, "RequestPaymentConfiguration"),
    "accelerate": ("GetBucketAccelerateConfiguration", None, "AccelerateConfiguration"),
}
_BUCKET_UNSUPPORTED = (
    "analytics",
    "metrics",
    "inventory",
    "intelligent-tiering",
    "session",
    "metadataTable",
    "metadataConfiguration",
)
_PUT_BUCKET_UNSUPPORTED = (
    "policy",
    "lifecycle",
    "encryption",
    "website",
    "replication",
    "object-lock",
    "ownershipControls",
    "publicAccessBlock",
    "logging",
    "notification",
    "requestPayment",
    "accelerate",
    *_BUCKET_UNSUPPORTED,
)


def bucket_op(method: str, bucket: str, q: Mapping[str, str], h: Headers) -> op.S3Operation:
    if method == "HEAD":
        return op.HeadBucket(bucket=bucket)
    if method == "GET":
        return _get_bucket(bucket, q)
    if method == "PUT":
        if "versioning" in q:
            return op.PutBucketVersioning(bucket=bucket)
        if "tagging" in q:
            return op.PutBucketTagging(bucket=bucket, content_md5=body.content_md5(h))
        if "cors" in q:
            return op.PutBucketCors(bucket=bucket, content_md5=body.content_md5(h))
        if "acl" in q:
            return op.PutBucketAcl(bucket=bucket, acl=params.acl(h))
        for sub in _PUT_BUCKET_UNSUPPORTED:
            if sub in q:
                return op.Unsupported(name=f"PUT ?{sub}", bucket=bucket)
        lock = (h.get("x-amz-bucket-object-lock-enabled") or "").strip().lower() == "true"
        return op.CreateBucket(
            bucket=bucket,
            acl=params.acl(h),
            object_lock_enabled=lock,
            content_md5=body.content_md5(h),
        )
    if method == "DELETE":
        if "tagging" in q:
            return op.DeleteBucketTagging(bucket=bucket)
        if "cors" in q:
            return op.DeleteBucketCors(bucket=bucket)
        if "policy" in q:
            return op.DeleteBucketPolicy(bucket=bucket)
        if "lifecycle" in q:
            return op.DeleteBucketLifecycle(bucket=bucket)
        for sub in _PUT_BUCKET_UNSUPPORTED:
            if sub in q:
                return op.Unsupported(name=f"DELETE ?{sub}", bucket=bucket)
        return op.DeleteBucket(bucket=bucket)
    # POST
    if "delete" in q:
        payload = body.payload_info(h, 64 * 1024 * 1024, body_required=False)
        if not _has_integrity_check(payload):
            # S3 requires Content-MD5 or an x-amz-checksum-* (header or trailer) here
            raise S3Error.invalid_request(
                "Missing required header for this request: Content-MD5 OR x-amz-checksum-*"
            )
        return op.DeleteObjects(bucket=bucket, payload=payload)
    return op.Unsupported(name="PostObject", bucket=bucket)


def _has_integrity_check(payload: op.PayloadInfo) -> bool:
    """Content-MD5, an x-amz-checksum-* header or a trailing x-amz-checksum-* announced."""
    trailer = payload.trailer or ""
    return (
        payload.content_md5 is not None
        or payload.checksum is not None
        or trailer.startswith("x-amz-checksum-")
    )


def _get_bucket(bucket: str, q: Mapping[str, str]) -> op.S3Operation:
    if "location" in q:
        return op.GetBucketLocation(bucket=bucket)
    if "versioning" in q:
        return op.GetBucketVersioning(bucket=bucket)
    if "tagging" in q:
        return op.GetBucketTagging(bucket=bucket)
    if "cors" in q:
        return op.GetBucketCors(bucket=bucket)
    if "acl" in q:
        return op.GetBucketAcl(bucket=bucket)
    if "policy" in q:
        return op.GetBucketPolicy(bucket=bucket)
    for sub, (name, code, text) in _UNCONFIGURED.items():
        if sub in q:
            if code is None:
                return op.GetBucketConfiguration(
                    bucket=bucket, name=name, subresource=sub, empty_document=text
                )
            return op.GetBucketConfiguration(
                bucket=bucket, name=name, subresource=sub, error_code=code, error_message=text
            )
    for sub in _BUCKET_UNSUPPORTED:
        if sub in q:
            return op.Unsupported(name=f"GET ?{sub}", bucket=bucket)
    if "uploads" in q:
        return op.ListMultipartUploads(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=params.delimiter(q),
            key_marker=q.get("key-marker", ""),
            upload_id_marker=q.get("upload-id-marker", ""),
            max_uploads=params.int_param(q, "max-uploads", 1000, 1000),
            encoding_type=params.encoding_type(q),
        )
    if "versions" in q:
        return op.ListObjectVersions(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=params.delimiter(q),
            key_marker=q.get("key-marker", ""),
            version_id_marker=q.get("version-id-marker", ""),
            max_keys=params.int_param(q, "max-keys", 1000, 1000),
            encoding_type=params.encoding_type(q),
        )
    list_type = q.get("list-type")
    if list_type is None:
        return op.ListObjects(
            bucket=bucket,
            prefix=q.get("prefix", ""),
            delimiter=params.delimiter(q),
            marker=q.get("marker", ""),
            max_keys=params.int_param(q, "max-keys", 1000, 1000),
            encoding_type=params.encoding_type(q),
        )
    if list_type != "2":
        raise S3Error.invalid_argument("Invalid list type specified", "list-type", list_type)
    token = q.get("continuation-token")
    if token == "":
        raise S3Error.invalid_argument(
            "The continuation token provided is incorrect", "continuation-token", token
        )
    return op.ListObjectsV2(
        bucket=bucket,
        prefix=q.get("prefix", ""),
        delimiter=params.delimiter(q),
        max_keys=params.int_param(q, "max-keys", 1000, 1000),
        continuation_token=token,
        start_after=q.get("start-after", ""),
        fetch_owner=q.get("fetch-owner", "").lower() == "true",
        encoding_type=params.encoding_type(q),
    )
