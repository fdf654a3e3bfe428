"""Bucket handlers: create/head/delete, location, versioning, tagging, CORS (and preflight),
ACLs, policy and the never-configured sub-resources.

Ownership: every handler goes through ``Services.bucket`` (NoSuchBucket, then AccessDenied
unless owner or admin), except CreateBucket (the catalog answers BucketAlreadyOwnedByYou /
BucketAlreadyExists) and the unauthenticated CORS preflight. Commands name the incarnation
of the bucket record that was checked, so a bucket deleted and re-created (by anyone)
between the check and the command answers NoSuchBucket instead of being changed.
"""

from __future__ import annotations

from starlette.responses import Response

from gateway import operations as op
from gateway import xml
from gateway.context import RequestContext, Services, make_response, read_small_body, xml_response
from gateway.errors import S3Error
from metadata.api import GetBucketQuery
from metadata.fsm import commands as cmd
from metadata.fsm import records

__all__ = [
    "cors_headers",
    "cors_preflight",
    "create_bucket",
    "delete_bucket",
    "delete_bucket_cors",
    "delete_bucket_subresource",
    "delete_bucket_tagging",
    "get_bucket_acl",
    "get_bucket_configuration",
    "get_bucket_cors",
    "get_bucket_location",
    "get_bucket_policy",
    "get_bucket_tagging",
    "get_bucket_versioning",
    "head_bucket",
    "put_bucket_acl",
    "put_bucket_cors",
    "put_bucket_tagging",
    "put_bucket_versioning",
]


async def create_bucket(sv: Services, ctx: RequestContext, o: op.CreateBucket) -> Response:
    body = await read_small_body(ctx, 1024 * 1024)
    xml.parse_create_bucket_configuration(body)  # any LocationConstraint is accepted
    await sv.catalog.execute(cmd.CreateBucket(o.bucket, ctx.owner, o.acl or "private"))
    return make_response(200, [("Location", f"/{o.bucket}")])


async def head_bucket(sv: Services, ctx: RequestContext, o: op.HeadBucket) -> Response:
    await sv.bucket(ctx, o.bucket)
    return make_response(200, [("x-amz-bucket-region", sv.region)])


async def delete_bucket(sv: Services, ctx: RequestContext, o: op.DeleteBucket) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    await sv.catalog.execute(cmd.DeleteBucket(o.bucket, rec.incarnation))
    sv.forget_bucket(o.bucket)
    return make_response(204)


async def get_bucket_location(
    sv: Services, ctx: RequestContext, o: op.GetBucketLocation
) -> Response:
    await sv.bucket(ctx, o.bucket)
    return xml_response(xml.location_constraint(sv.region))


# -- versioning -------------------------------------------------------------------------------
async def get_bucket_versioning(
    sv: Services, ctx: RequestContext, o: op.GetBucketVersioning
) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    status = None if rec.versioning == "Unversioned" else rec.versioning
    return xml_response(xml.versioning_configuration(status))


async def put_bucket_versioning(
    sv: Services, ctx: RequestContext, o: op.PutBucketVersioning
) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    config = xml.parse_versioning_configuration(await read_small_body(ctx, 1024 * 1024))
    if config.status == "Enabled":
        await sv.catalog.execute(cmd.PutBucketVersioning(o.bucket, "Enabled", rec.incarnation))
    elif config.status == "Suspended":
        await sv.catalog.execute(cmd.PutBucketVersioning(o.bucket, "Suspended", rec.incarnation))
    return make_response(200)


# -- tagging ----------------------------------------------------------------------------------
async def get_bucket_tagging(sv: Services, ctx: RequestContext, o: op.GetBucketTagging) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    if rec.tags is None:
        raise S3Error.no_such_tag_set(o.bucket)
    return xml_response(xml.tagging([op.Tag(k, v) for k, v in rec.tags]))


async def put_bucket_tagging(sv: Services, ctx: RequestContext, o: op.PutBucketTagging) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    tags = xml.parse_tagging(await read_small_body(ctx, 1024 * 1024), 50)
    pairs = tuple(sorted((t.key, t.value) for t in tags))
    await sv.catalog.execute(cmd.PutBucketTagging(o.bucket, pairs, rec.incarnation))
    return make_response(204)


async def delete_bucket_tagging(
    sv: Services, ctx: RequestContext, o: op.DeleteBucketTagging
) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    await sv.catalog.execute(cmd.PutBucketTagging(o.bucket, None, rec.incarnation))
    return make_response(204)


# -- CORS -------------------------------------------------------------------------------------
def _to_xml_rules(rules: tuple[records.CorsRule, ...]) -> xml.CorsConfiguration:
    return xml.CorsConfiguration(
        tuple(
            xml.CorsRule(
                allowed_methods=r.allowed_methods,
                allowed_origins=r.allowed_origins,
                allowed_headers=r.allowed_headers,
                expose_headers=r.expose_headers,
                max_age_seconds=r.max_age_s,
                id=r.rule_id or None,
            )
            for r in rules
        )
    )


async def get_bucket_cors(sv: Services, ctx: RequestContext, o: op.GetBucketCors) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    if not rec.cors:
        raise S3Error.no_such_cors_configuration(o.bucket)
    return xml_response(xml.cors_configuration(_to_xml_rules(rec.cors)))


async def put_bucket_cors(sv: Services, ctx: RequestContext, o: op.PutBucketCors) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    config = xml.parse_cors_configuration(await read_small_body(ctx, 1024 * 1024))
    rules = tuple(
        records.CorsRule(
            allowed_origins=r.allowed_origins,
            allowed_methods=r.allowed_methods,
            allowed_headers=r.allowed_headers,
            expose_headers=r.expose_headers,
            max_age_s=r.max_age_seconds,
            rule_id=r.id or "",
        )
        for r in config.rules
    )
    await sv.catalog.execute(cmd.PutBucketCors(o.bucket, rules, rec.incarnation))
    return make_response(200)


async def delete_bucket_cors(sv: Services, ctx: RequestContext, o: op.DeleteBucketCors) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    await sv.catalog.execute(cmd.PutBucketCors(o.bucket, None, rec.incarnation))
    return make_response(204)


async def cors_preflight(sv: Services, ctx: RequestContext, o: op.CorsPreflight) -> Response:
    """OPTIONS: answered from the bucket's rules, without authentication (as S3)."""
    rec = await sv.catalog.query(GetBucketQuery(o.bucket))
    assert isinstance(rec, records.BucketRecord)
    rule = (
        _to_xml_rules(rec.cors).find_rule(o.origin, o.request_method, o.request_headers)
        if rec.cors
        else None
    )
    if rule is None:
        raise S3Error("AccessDenied", "CORSResponse: This CORS request is not allowed.", 403)
    origin = "*" if "*" in rule.allowed_origins else o.origin
    headers = [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)),
        ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
    ]
    if o.request_headers:
        headers.append(("Access-Control-Allow-Headers", ", ".join(o.request_headers)))
    if rule.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ", ".join(rule.expose_headers)))
    if rule.max_age_seconds is not None:
        headers.append(("Access-Control-Max-Age", str(rule.max_age_seconds)))
    if origin != "*":
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return make_response(200, headers)


# -- ACL, policy, unconfigured sub-resources ----------------------------------------------------
async def get_bucket_acl(sv: Services, ctx: RequestContext, o: op.GetBucketAcl) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    return xml_response(xml.access_control_policy(xml.Owner(rec.owner, rec.owner)))


async def put_bucket_acl(sv: Services, ctx: RequestContext, o: op.PutBucketAcl) -> Response:
    rec = await sv.bucket(ctx, o.bucket)
    body = await read_small_body(ctx, 1024 * 1024)
    if body.strip():
        xml.parse_access_control_policy(body)  # validated, then ignored: owner-only ACLs
    if o.acl is not None:
        await sv.catalog.execute(cmd.PutBucketAcl(o.bucket, o.acl, rec.incarnation))
    return make_response(200)


async def get_bucket_policy(sv: Services, ctx: RequestContext, o: op.GetBucketPolicy) -> Response:
    await sv.bucket(ctx, o.bucket)
    raise S3Error.no_such_bucket_policy(o.bucket)


async def delete_bucket_subresource(
    sv: Services, ctx: RequestContext, o: op.DeleteBucketPolicy | op.DeleteBucketLifecycle
) -> Response:
    await sv.bucket(ctx, o.bucket)
    return make_response(204)


async def get_bucket_configuration(
    sv: Services, ctx: RequestContext, o: op.GetBucketConfiguration
) -> Response:
    await sv.bucket(ctx, o.bucket)
    if o.error_code is not None:
        raise S3Error.not_configured(o.error_code, o.error_message, o.bucket)
    return xml_response(xml.empty_configuration(o.empty_document or o.name))


async def cors_headers(
    sv: Services, bucket: str, origin: str, method: str
) -> list[tuple[str, str]]:
    """CORS headers for an actual (non-preflight) request with ``Origin`` (empty if none)."""
    rec = await sv.catalog.query(GetBucketQuery(bucket))
    if not isinstance(rec, records.BucketRecord) or not rec.cors:
        return []
    rule = _to_xml_rules(rec.cors).find_rule(origin, method)
    if rule is None:
        return []
    allow = "*" if "*" in rule.allowed_origins else origin
    out = [
        ("Access-Control-Allow-Origin", allow),
        ("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)),
        ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
    ]
    if rule.expose_headers:
        out.append(("Access-Control-Expose-Headers", ", ".join(rule.expose_headers)))
    if rule.max_age_seconds is not None:
        out.append(("Access-Control-Max-Age", str(rule.max_age_seconds)))
    if allow != "*":
        out.append(("Access-Control-Allow-Credentials", "true"))
    return out
