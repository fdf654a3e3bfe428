"""Test support for the gateway app tests: a SigV4-signing client over httpx.ASGITransport.

No tests here; the ``test_app_*`` modules import ``Gateway`` / ``make_gateway``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from blobstore.client.catalog import LocalCatalog
from gateway.app import GatewayApp, create_app
from gateway.sigv4 import UNSIGNED_PAYLOAD, presign_url, sign_request
from gateway.storage import MemoryObjectStore
from metadata.fsm.commands import PutAccessKey, PutUser

__all__ = ["ADMIN", "ALICE", "BOB", "Gateway", "Key", "make_gateway"]

HOST = "testserver"


@dataclass(frozen=True)
class Key:
    user: str
    access_key: str
    secret: str
    is_admin: bool = False


ADMIN = Key("root", "ROOTKEY", "root-secret", True)
ALICE = Key("alice", "ALICEKEY", "alice-secret")
BOB = Key("bob", "BOBKEY", "bob-secret")


def encode_key(key: str) -> str:
    return quote(key, safe="/~")


@dataclass
class Gateway:
    app: GatewayApp
    catalog: LocalCatalog
    store: MemoryObjectStore
    client: httpx.AsyncClient
    key: Key = ALICE
    extra: dict[str, str] = field(default_factory=dict)

    def as_user(self, key: Key) -> Gateway:
        return Gateway(self.app, self.catalog, self.store, self.client, key)

    async def request(
        self,
        method: str,
        path: str,
        query: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        sign: bool = True,
        payload_hash: str | None = None,
        key: Key | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        """``path``/``query`` as sent on the wire (already percent-encoded)."""
        who = key or self.key
        pairs = [("host", HOST), *((k.lower(), v) for k, v in (headers or {}).items())]
        if sign:
            pairs = sign_request(
                method,
                path,
                query,
                pairs,
                access_key=who.access_key,
                secret=secret if secret is not None else who.secret,
                region="us-east-1",
                now=datetime.now(UTC),
                payload_hash=payload_hash or hashlib.sha256(body).hexdigest(),
            )
        url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
        return await self.client.request(method, url, headers=pairs, content=body)

    def presign(self, method: str, path: str, query: str = "", expires_s: int = 300) -> str:
        q = presign_url(
            method,
            path,
            query,
            HOST,
            access_key=self.key.access_key,
            secret=self.key.secret,
            region="us-east-1",
            now=datetime.now(UTC),
            expires_s=expires_s,
        )
        return f"http://{HOST}{path}?{q}"

    async def put(self, bucket: str, key: str, body: bytes, **headers: str) -> httpx.Response:
        return await self.request("PUT", f"/{bucket}/{encode_key(key)}", headers=headers, body=body)

    async def get(self, bucket: str, key: str, query: str = "", **headers: str) -> httpx.Response:
        return await self.request("GET", f"/{bucket}/{encode_key(key)}", query, headers=headers)

    async def unsigned(self, method: str, url: str, body: bytes = b"") -> httpx.Response:
        return await self.client.request(method, url, content=body)


async def make_gateway(
    *,
    inline_threshold_bytes: int = 4096,
    chunk_bytes: int = 64 * 1024,
    max_object_bytes: int = 64 * 1024 * 1024,
    catalog: LocalCatalog | None = None,
) -> Gateway:
    """A gateway over a fresh LocalCatalog + MemoryObjectStore with three users."""
    catalog = catalog or LocalCatalog()
    for k in (ADMIN, ALICE, BOB):
        await catalog.execute(PutUser(k.user, k.is_admin))
        await catalog.execute(PutAccessKey(k.access_key, k.secret, k.user))
    store = MemoryObjectStore(
        inline_threshold_bytes=inline_threshold_bytes, chunk_bytes=chunk_bytes
    )
    app = create_app(catalog, store, max_object_bytes=max_object_bytes, auth_ttl_s=0.0)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{HOST}")
    return Gateway(app, catalog, store, client)


__all__ += ["HOST", "UNSIGNED_PAYLOAD", "encode_key"]
