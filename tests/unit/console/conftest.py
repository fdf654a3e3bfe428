"""Fixtures for the console route tests: an in-process gateway (LocalCatalog + memory
store) with the console mounted, a fake cluster probe, and an httpx client per user."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from blobstore.client.catalog import LocalCatalog
from blobstore.errors import Unavailable
from blobstore.types import Address
from gateway.app import create_app
from gateway.console.mount import ConsoleGateway, with_console
from gateway.console.status import MetaNodeView
from gateway.storage import MemoryObjectStore
from metadata.fsm.commands import PutAccessKey, PutUser, RegisterChunkserver

ROOT_KEY, ROOT_SECRET = "ROOTKEY0001", "root-secret-0123456789"
SECRET = bytes(range(32))
BASE = "http://console.test"


@dataclass
class FakeProbe:
    """Three metadata nodes (node 2 leads) and chunkservers that answer unless listed in
    ``dead``."""

    dead: set[str] = field(default_factory=set)
    meta_down: set[str] = field(default_factory=set)

    async def metadata_nodes(self) -> tuple[MetaNodeView, ...]:
        out = []
        for i in (1, 2, 3):
            addr = f"127.0.0.1:700{i}"
            if addr in self.meta_down:
                out.append(MetaNodeView(addr, False, error="connection refused"))
            else:
                role = "leader" if i == 2 else "follower"
                out.append(MetaNodeView(addr, True, i, role, 7, 2, 100 + i, 100 + i))
        return tuple(out)

    async def ping_chunkserver(self, addr: Address) -> float:
        if str(addr) in self.dead:
            raise Unavailable(f"{addr} refused the connection")
        return 0.4


@dataclass
class Console:
    app: ConsoleGateway
    catalog: LocalCatalog
    store: MemoryObjectStore
    probe: FakeProbe

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE, follow_redirects=False
        )

    async def login(self, access_key: str = ROOT_KEY, secret: str = ROOT_SECRET) -> Session:
        client = self.client()
        await login(client, access_key, secret)
        page = await client.get("/_console/buckets")
        assert page.status_code == 200, page.text
        return Session(client, csrf_of(page.text))


@dataclass
class Session:
    client: httpx.AsyncClient
    csrf: str


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


async def login(client: httpx.AsyncClient, access_key: str, secret: str) -> httpx.Response:
    form = await client.get("/_console/login")
    assert form.status_code == 200
    m = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert m
    return await client.post(
        "/_console/login",
        data={"login_token": m.group(1), "access_key": access_key, "secret_key": secret},
    )


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    pytest.importorskip("jinja2", reason="the console's templates need jinja2")
    catalog = LocalCatalog()
    await catalog.execute(PutUser("root", is_admin=True))
    await catalog.execute(PutAccessKey(ROOT_KEY, ROOT_SECRET, "root"))
    for i in range(1, 4):
        await catalog.execute(
            RegisterChunkserver(i, Address("127.0.0.1", 7100 + i), "", 1000 * 2**20, 600 * 2**20)
        )
    store = MemoryObjectStore()
    probe = FakeProbe()
    app = with_console(
        create_app(catalog, store), secret=SECRET, probe=probe, ttl_s=0.0, scan_ttl_s=0.0
    )
    yield Console(app, catalog, store, probe)
