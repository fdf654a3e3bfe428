"""``AuthContext``: the outcome of a successful SigV4 (or SigV2) verification.

Owns the value the gateway carries through a request: who signed it, and what is needed to
check its body (signing key, seed signature, payload mode and announced sha256). A SigV2
context has ``signature_version == 2``, no scope or signing key and
``PayloadMode.UNSIGNED`` (SigV2 does not cover the body).

Pure: imports only the stdlib and ``gateway.sigv4.payload``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sigv4.payload import PayloadHashVerifier, PayloadMode

__all__ = ["AuthContext"]


@dataclass(frozen=True, slots=True)
class AuthContext:
    """A verified request: who signed it and what is needed to check its body."""

    access_key: str
    region: str
    date: str  # yyyymmdd of the scope
    amz_date: str  # yyyymmddTHHMMSSZ used in the string to sign
    scope: str  # yyyymmdd/region/s3/aws4_request
    signing_key: bytes
    seed_signature: str  # the request signature: previous-signature of the first chunk
    payload_mode: PayloadMode
    payload_sha256: str | None  # lower-case hex when payload_mode is SHA256
    is_presigned: bool
    signed_headers: tuple[str, ...]
    signature_version: int = 4  # 2: legacy HMAC-SHA1 (no scope, key or payload hash)

    def payload_verifier(self) -> PayloadHashVerifier | None:
        """A verifier for SHA256 mode (None for other modes)."""
        if self.payload_mode is PayloadMode.SHA256 and self.payload_sha256 is not None:
            return PayloadHashVerifier(self.payload_sha256)
        return None
