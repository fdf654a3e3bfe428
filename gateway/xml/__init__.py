"""S3 XML: response builders (string building) and hardened request-body parsers (pure).

This package re-exports its public API, so callers keep ``from gateway import xml`` and
``xml.list_objects_result(...)``. Modules:

===============  =============================================================================
``values``       the typed values documents carry (entries, pages, CORS rules, ACL grants)
``writer``       escaping, timestamps, ETags, elements and documents shared by all responses
``listings``     ``List*Result`` responses
``responses``    every other response document
``tree``         hardened expat parsing into ``Node`` trees (no DTD, byte/depth/count caps)
``bodies``       request bodies -> typed values
===============  =============================================================================

Imports point one way: ``listings``/``responses`` -> ``writer`` -> ``values``;
``bodies`` -> ``tree``/``values``. Anything malformed raises ``S3Error``. Must not import
starlette or anything doing I/O.
"""

from __future__ import annotations

from gateway.xml.bodies import (
    parse_access_control_policy,
    parse_complete_multipart_upload,
    parse_cors_configuration,
    parse_create_bucket_configuration,
    parse_delete,
    parse_tagging,
    parse_versioning_configuration,
)
from gateway.xml.listings import (
    list_all_my_buckets_result,
    list_multipart_uploads_result,
    list_objects_result,
    list_objects_v2_result,
    list_parts_result,
    list_versions_result,
)
from gateway.xml.responses import (
    access_control_policy,
    complete_multipart_upload_result,
    copy_object_result,
    copy_part_result,
    cors_configuration,
    delete_result,
    empty_configuration,
    get_object_attributes_response,
    initiate_multipart_upload_result,
    location_constraint,
    tagging,
    versioning_configuration,
)
from gateway.xml.values import (
    AclGrant,
    BucketEntry,
    CompletedPart,
    CorsConfiguration,
    CorsRule,
    DeletedEntry,
    DeleteError,
    DeleteRequest,
    ListPage,
    ObjectEntry,
    ObjectIdentifier,
    Owner,
    PartEntry,
    UploadEntry,
    VersionEntry,
    VersioningConfiguration,
)
from gateway.xml.writer import NS, escape, format_timestamp, quote_etag

__all__ = [
    "NS",
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
    "access_control_policy",
    "complete_multipart_upload_result",
    "copy_object_result",
    "copy_part_result",
    "cors_configuration",
    "delete_result",
    "empty_configuration",
    "escape",
    "format_timestamp",
    "get_object_attributes_response",
    "initiate_multipart_upload_result",
    "list_all_my_buckets_result",
    "list_multipart_uploads_result",
    "list_objects_result",
    "list_objects_v2_result",
    "list_parts_result",
    "list_versions_result",
    "location_constraint",
    "parse_access_control_policy",
    "parse_complete_multipart_upload",
    "parse_cors_configuration",
    "parse_create_bucket_configuration",
    "parse_delete",
    "parse_tagging",
    "parse_versioning_configuration",
    "quote_etag",
    "tagging",
    "versioning_configuration",
]
