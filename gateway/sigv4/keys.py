"""SigV4 credential scope and signing keys: derivation, HMAC and a bounded key cache.

Owns: ``CredentialScope`` (``AK/yyyymmdd/region/service/aws4_request``),
``derive_signing_key`` (the four-step HMAC chain), ``hmac_hex`` (hex HMAC-SHA256 of a
string to sign) and ``SigningKeyCache`` with the process-wide ``DEFAULT_KEY_CACHE``.

Invariant: a cached key is served only for the exact secret it was derived from, so a
rotated secret is never answered from the cache.

Pure: must not import anything but the stdlib.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "DEFAULT_KEY_CACHE",
    "CredentialScope",
    "SigningKeyCache",
    "derive_signing_key",
    "hmac_hex",
]


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """``AK/yyyymmdd/region/service/aws4_request`` from a credential."""

    access_key: str
    date: str
    region: str
    service: str = "s3"

    @property
    def scope(self) -> str:
        """The scope without the access key, as used in the string to sign."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    @property
    def credential(self) -> str:
        return f"{self.access_key}/{self.scope}"


def derive_signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")."""
    key = hmac.new(b"AWS4" + secret.encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def hmac_hex(key: bytes, msg: str) -> str:
    """Hex HMAC-SHA256 of ``msg`` (UTF-8) under ``key``."""
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).hexdigest()


class SigningKeyCache:
    """Bounded LRU of derived signing keys per (access key, date, region, service).

    The secret is stored with the key so a rotated secret is never served from the cache.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str, str, str], tuple[str, bytes]] = OrderedDict()

    def get(self, access_key: str, secret: str, date: str, region: str, service: str) -> bytes:
        slot = (access_key, date, region, service)
        hit = self._entries.get(slot)
        if hit is not None and hit[0] == secret:
            self._entries.move_to_end(slot)
            return hit[1]
        key = derive_signing_key(secret, date, region, service)
        self._entries[slot] = (secret, key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._entries)


DEFAULT_KEY_CACHE = SigningKeyCache()
