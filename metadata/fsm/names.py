"""Validation of names the catalog stores: bucket names (S3 rules), object keys, ids.

Bucket names (S3 general-purpose rules): 3-63 characters of lowercase letters, digits, dots
and hyphens; start and end with a letter or digit; no ``..``; not formatted as an IPv4
address; no ``xn--`` / ``sthree-`` prefix; no ``-s3alias`` / ``--ol-s3`` suffix.
Object keys: 1..1024 UTF-8 bytes, no NUL (NUL is the catalog's key separator; S3 clients
cannot send it in XML anyway) and no lone surrogates (not encodable as UTF-8).
Ids chosen by the proposer (version/upload/chunk ids, client ids): 1..128 printable ASCII
characters.
Pure: stdlib only.
"""

from __future__ import annotations

import re

__all__ = ["MAX_KEY_BYTES", "bucket_name_error", "id_error", "key_error"]

MAX_KEY_BYTES = 1024
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")


def bucket_name_error(name: str) -> str | None:
    """Why ``name`` is not a valid bucket name, or None if it is."""
    if not isinstance(name, str) or not 3 <= len(name) <= 63:
        return "bucket name must be 3 to 63 characters long"
    if not _BUCKET_RE.fullmatch(name):
        return (
            "bucket name may hold only lowercase letters, digits, dots and hyphens, "
            "and must start and end with a letter or digit"
        )
    if ".." in name:
        return "bucket name must not contain two adjacent periods"
    if _IPV4_RE.fullmatch(name):
        return "bucket name must not be formatted as an IP address"
    if name.startswith(("xn--", "sthree-")):
        return "bucket name must not start with 'xn--' or 'sthree-'"
    if name.endswith(("-s3alias", "--ol-s3")):
        return "bucket name must not end with '-s3alias' or '--ol-s3'"
    return None


def key_error(key: str) -> str | None:
    """Why ``key`` is not a storable object key, or None."""
    if not isinstance(key, str) or not key:
        return "object key must be a non-empty string"
    if "\x00" in key:
        return "object key must not contain NUL"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "object key is not valid Unicode"
    if size > MAX_KEY_BYTES:
        return f"object key is longer than {MAX_KEY_BYTES} bytes"
    return None


def id_error(what: str, value: str) -> str | None:
    """Why a proposer-chosen id is malformed, or None."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        return f"{what} must be 1..128 printable ASCII characters without spaces"
    return None
