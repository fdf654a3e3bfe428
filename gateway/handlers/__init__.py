"""S3 operation handlers and THE dispatch: one ``match`` over every ``S3Operation``.

Each handler is ``async (Services, RequestContext, operation) -> Response`` and raises
``S3Error`` / domain errors / auth errors; only ``gateway.app`` turns those into HTTP
(through ``gateway.errors.to_response``).
"""

from __future__ import annotations

from starlette.responses import Response

from gateway import operations as op
from gateway.context import RequestContext, Services
from gateway.errors import S3Error
from gateway.handlers import bucket, listing, multipart
from gateway.handlers import object as obj

__all__ = ["dispatch"]


async def dispatch(sv: Services, ctx: RequestContext, o: op.S3Operation) -> Response:
    """Run the handler of ``o``."""
    match o:
        # service
        case op.ListBuckets():
            return await listing.list_buckets(sv, ctx, o)
        # buckets
        case op.CreateBucket():
            return await bucket.create_bucket(sv, ctx, o)
        case op.HeadBucket():
            return await bucket.head_bucket(sv, ctx, o)
        case op.DeleteBucket():
            return await bucket.delete_bucket(sv, ctx, o)
        case op.GetBucketLocation():
            return await bucket.get_bucket_location(sv, ctx, o)
        case op.GetBucketVersioning():
            return await bucket.get_bucket_versioning(sv, ctx, o)
        case op.PutBucketVersioning():
            return await bucket.put_bucket_versioning(sv, ctx, o)
        case op.GetBucketTagging():
            return await bucket.get_bucket_tagging(sv, ctx, o)
        case op.PutBucketTagging():
            return await bucket.put_bucket_tagging(sv, ctx, o)
        case op.DeleteBucketTagging():
            return await bucket.delete_bucket_tagging(sv, ctx, o)
        case op.GetBucketCors():
            return await bucket.get_bucket_cors(sv, ctx, o)
        case op.PutBucketCors():
            return await bucket.put_bucket_cors(sv, ctx, o)
        case op.DeleteBucketCors():
            return await bucket.delete_bucket_cors(sv, ctx, o)
        case op.CorsPreflight():
            return await bucket.cors_preflight(sv, ctx, o)
        case op.GetBucketAcl():
            return await bucket.get_bucket_acl(sv, ctx, o)
        case op.PutBucketAcl():
            return await bucket.put_bucket_acl(sv, ctx, o)
        case op.GetBucketPolicy():
            return await bucket.get_bucket_policy(sv, ctx, o)
        case op.DeleteBucketPolicy() | op.DeleteBucketLifecycle():
            return await bucket.delete_bucket_subresource(sv, ctx, o)
        case op.GetBucketConfiguration():
            return await bucket.get_bucket_configuration(sv, ctx, o)
        # listings
        case op.ListObjects():
            return await listing.list_objects(sv, ctx, o)
        case op.ListObjectsV2():
            return await listing.list_objects_v2(sv, ctx, o)
        case op.ListObjectVersions():
            return await listing.list_object_versions(sv, ctx, o)
        case op.ListMultipartUploads():
            return await multipart.list_multipart_uploads(sv, ctx, o)
        case op.ListParts():
            return await multipart.list_parts(sv, ctx, o)
        # objects
        case op.PutObject():
            return await obj.put_object(sv, ctx, o)
        case op.GetObject():
            return await obj.get_object(sv, ctx, o)
        case op.HeadObject():
            return await obj.head_object(sv, ctx, o)
        case op.DeleteObject():
            return await obj.delete_object(sv, ctx, o)
        case op.DeleteObjects():
            return await obj.delete_objects(sv, ctx, o)
        case op.CopyObject():
            return await obj.copy_object(sv, ctx, o)
        case op.GetObjectTagging():
            return await obj.get_object_tagging(sv, ctx, o)
        case op.PutObjectTagging():
            return await obj.put_object_tagging(sv, ctx, o)
        case op.DeleteObjectTagging():
            return await obj.delete_object_tagging(sv, ctx, o)
        case op.GetObjectAcl():
            return await obj.get_object_acl(sv, ctx, o)
        case op.PutObjectAcl():
            return await obj.put_object_acl(sv, ctx, o)
        case op.GetObjectAttributes():
            return await obj.get_object_attributes(sv, ctx, o)
        # multipart
        case op.CreateMultipartUpload():
            return await multipart.create_multipart_upload(sv, ctx, o)
        case op.UploadPart():
            return await multipart.upload_part(sv, ctx, o)
        case op.UploadPartCopy():
            return await multipart.upload_part_copy(sv, ctx, o)
        case op.CompleteMultipartUpload():
            return await multipart.complete_multipart_upload(sv, ctx, o)
        case op.AbortMultipartUpload():
            return await multipart.abort_multipart_upload(sv, ctx, o)
        case op.Unsupported():
            raise S3Error("NotImplemented", f"{o.name} is not implemented", 501)
    raise S3Error("NotImplemented", f"{type(o).__name__} is not implemented", 501)
