"""S3 requests through the whole cluster, simulated in one process under faults.

The full stack of ``blobstore server``, on virtual time and a seeded network: two S3
gateways (the real ASGI app: SigV4 authentication, routing, handlers, error mapping, each
with its own ``ClusterObjectStore`` and ``RemoteCatalog``), three metadata nodes (Raft
driver, catalog, maintenance driver, RPC service; ``tests.sim.raft.raftmeta``) and six
chunkservers (heartbeats, scrub, repair, GC; ``tests.sim.datapath.harness``). Clients sign
requests as AWS SDKs do and send them in process (``httpx.ASGITransport``): PUT, GET,
HEAD, DELETE of a few keys, and ListObjectsV2. Meanwhile chunkservers crash and restart,
the metadata leader is killed, metadata nodes are paused (SIGSTOP), cut off from their
peers or from everyone, messages are lost, and the second gateway is killed (-9) in the
middle of a request, then restarted as a new process. Then the faults heal. Checked:

- no response is a 500: every failure under faults is a 503 clients retry, the 4xx the
  request deserves, or, for a GET whose read fails after its status line went out, a
  connection closed mid-body (as uvicorn does), never a short body that looks whole (a
  killed gateway's connections are reset; a write they carried has an unknown outcome);
- every GET body has the MD5 its ETag names, and is a version some PUT stored;
- the history of PUTs, DELETEs, GETs and HEADs (values: ETags; a 503 on a write is an
  unknown outcome, on a read no effect), closed by a GET of every key after the faults, is
  linearizable;
- a listing names only keys and ETags that were written;
- once the faults healed, every key reads as 200 or 404 (a stored object that cannot be
  read, e.g. one committed before its shards were durable, would show here as a 503).

Seeded and replayable: ``BLOBSTORE_SEED=N`` runs one seed; 1 by default, 4 behind ``slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from xml.etree import ElementTree

import httpx
import pytest

from blobstore.codec.ec import ZFEC
from blobstore.testing.history import HistoryRecorder, OpKind, Status
from blobstore.testing.linearizability import check
from blobstore.testing.virtual_loop import run
from chunkserver.gc import GcConfig
from gateway.app import GatewayApp, Message, Receive, Scope, Send
from gateway.auth import Authenticator
from gateway.context import Services
from gateway.sigv4 import sign_request
from gateway.storage import ClusterObjectStore
from metadata.fsm.commands import PutAccessKey, PutUser, SetErasureProfile
from metadata.fsm.records import ErasureProfile
from metadata.maintenance.driver import MaintenanceOptions
from tests.sim.datapath.harness import SimCluster
from tests.sim.raft.harness import fast_seeds, replayable, slow_seeds
from tests.sim.raft.raftmeta import RaftMeta

pytestmark = pytest.mark.sim

SERVERS = 6
PROFILE = ErasureProfile(coder=ZFEC, k=4, m=2, stripe_size_bytes=4096, chunk_size_bytes=16384)
SIZES = [0, 1, 3000, 4097, 16383, 16385, 40000]  # inline, one stripe, chunks and a tail
BUCKET, HOST = "photos", "s3.sim.test"
ACCESS_KEY, SECRET = "SIMROOTKEY", "sim-root-secret"
KEYS = tuple(f"album/{i}.jpg" for i in range(6))
CLIENTS = 4  # alternating between the two gateways
SECOND_GATEWAY = 50  # its node id on the simulated network
MAINTENANCE = MaintenanceOptions(
    interval_s=1.0, suspect_after_s=5.0, down_after_s=20.0, retry_backoff_s=2.0,
    repair_timeout_s=60.0,
)  # fmt: skip
GC = GcConfig(grace_s=30.0, orphan_interval_s=10.0, full_sweep_interval_s=60.0)
# chunkserver faults, then RaftMeta.inject's ("meta-" + its name; "failover" as is)
FAULTS = [
    *("crash", "restart", "failover", "meta-restart", "meta-pause", "meta-partition", "loss"),
    "gateway",  # kill -9 of the second gateway mid-request, or its restart
]
WORKLOAD_S = 60.0
SETTLE_S = 30.0  # after healing, before the closing reads


@dataclass
class Outcome:
    history: HistoryRecorder
    bodies: dict[str, bytes] = field(default_factory=dict)  # ETag -> body, every PUT sent
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> count
    listed: int = 0  # keys seen in listings
    resets: int = 0  # connections reset: a read failed after its status line, or a kill
    killed_in_flight: int = 0  # requests a gateway kill caught in the middle
    problems: list[str] = field(default_factory=list)
    schedule: list[str] = field(default_factory=list)
    trace_digest: str = ""


class _Connection:
    """The app as uvicorn serves it: a response the app leaves unfinished (a read that
    failed after its status line went out) closes the connection, which the client sees
    as a reset, never as a short body.

    ``kill`` is a kill -9 of the gateway process: its requests in flight are reset at the
    client and refused until ``revive`` gives it a new app (a restarted process). The
    killed app's tasks are cancelled while its node is crashed on the simulated network,
    so whatever cleanup they try never reaches the cluster, as after a real kill."""

    def __init__(self, app: GatewayApp) -> None:
        self._app: GatewayApp | None = app
        self._killed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # requests in flight, and those of killed processes until they wound down
        self.tasks: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()  # set as each request starts

    @property
    def alive(self) -> bool:
        return self._app is not None

    def kill(self) -> int:
        """Kill the process; the number of its requests in flight."""
        in_flight = sum(not t.done() for t in self.tasks)
        self._app = None
        self._killed.set_result(None)
        for task in self.tasks:
            task.cancel()
        return in_flight

    def revive(self, app: GatewayApp) -> None:
        self._app = app
        self._killed = asyncio.get_running_loop().create_future()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app, killed = self._app, self._killed
        if app is None:
            raise ConnectionRefusedError("the gateway is down")
        finished = False

        async def tracking(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        task = asyncio.ensure_future(app(scope, receive, tracking))
        self.tasks.add(task)
        self.started.set()
        await asyncio.wait((task, killed), return_when=asyncio.FIRST_COMPLETED)
        if not task.done() or task.cancelled():  # cancelled: by the kill
            raise ConnectionResetError("the gateway was killed mid-request")
        self.tasks.discard(task)
        task.result()
        if not finished:
            raise ConnectionResetError("the gateway closed the connection mid-response")


class S3:
    """A signing S3 client of one gateway app, called in process."""

    def __init__(self, app: GatewayApp, cluster: SimCluster) -> None:
        self._cluster = cluster
        self.connection = _Connection(app)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.connection),
            base_url=f"http://{HOST}",
            timeout=httpx.Timeout(None),  # the gateway's own deadlines decide
        )

    async def request(
        self, method: str, path: str, query: str = "", body: bytes = b""
    ) -> httpx.Response:
        now = datetime.fromtimestamp(self._cluster.clock.time(), UTC)
        headers = sign_request(
            method, path, query, [("host", HOST)], access_key=ACCESS_KEY, secret=SECRET,
            region="us-east-1", now=now, payload_hash=hashlib.sha256(body).hexdigest(),
        )  # fmt: skip
        url = path + (f"?{query}" if query else "")
        return await self.http.request(method, url, headers=headers, content=body)


def _app(cluster: SimCluster, node_id: int | None, rng: Random) -> GatewayApp:
    """A gateway process: its own transport, catalog client and store."""
    transport, catalog = (
        (cluster.client, cluster.catalog) if node_id is None else cluster.gateway(node_id)
    )
    assert catalog is not None
    clock = cluster.clock
    store = ClusterObjectStore(catalog, transport, clock=clock, rng=Random(rng.getrandbits(64)))
    services = Services(catalog, store, wall_clock=clock.time, monotonic=clock.monotonic)
    return GatewayApp(services, Authenticator(catalog, monotonic=clock.monotonic))


def _gateway(cluster: SimCluster, node_id: int | None, rng: Random) -> S3:
    return S3(_app(cluster, node_id, rng), cluster)


def _etag(response: httpx.Response) -> str:
    return str(response.headers.get("etag", "")).strip('"')


async def _call(
    s3: S3, out: Outcome, client: int, op: OpKind, key: str, body: bytes | None = None
) -> None:
    """One request of a client, into the history and the checks."""
    value = hashlib.md5(body, usedforsecurity=False).hexdigest() if body is not None else None
    if value is not None and body is not None:
        out.bodies[value] = body
    token = out.history.invoke(client, op, key, value)
    method = {"put": "PUT", "delete": "DELETE", "get": "GET"}[op]
    try:
        r = await s3.request(method, f"/{BUCKET}/{key}", body=body or b"")
    except ConnectionRefusedError:  # never reached a gateway: no effect
        out.history.complete(token, None, "fail")
        return
    except ConnectionResetError:
        out.resets += 1
        out.history.complete(token, None, "fail" if op == "get" else "info")
        return
    out.statuses[r.status_code] = out.statuses.get(r.status_code, 0) + 1
    status: Status = "ok"
    result: str | None = None
    expected = {"put": (200,), "delete": (204,), "get": (200, 404)}[op]
    if r.status_code == 503:  # retryable: a write may or may not have happened
        status = "info" if op != "get" else "fail"
    elif r.status_code not in expected:
        out.problems.append(f"{method} {key}: {r.status_code} {r.text[:200]}")
        status = "info"
    elif op == "get" and r.status_code == 200:
        result = _etag(r)
        if hashlib.md5(r.content, usedforsecurity=False).hexdigest() != result:
            out.problems.append(f"GET {key}: body does not match its ETag {result}")
        elif result not in out.bodies:
            out.problems.append(f"GET {key}: ETag {result} was never written")
    elif op == "put" and _etag(r) != value:
        out.problems.append(f"PUT {key}: ETag {_etag(r)} for a body of MD5 {value}")
    out.history.complete(token, result, status)


async def _list(s3: S3, out: Outcome) -> None:
    try:
        r = await s3.request("GET", f"/{BUCKET}", "list-type=2")
    except (ConnectionRefusedError, ConnectionResetError):
        return
    out.statuses[r.status_code] = out.statuses.get(r.status_code, 0) + 1
    if r.status_code == 503:
        return
    if r.status_code != 200:
        out.problems.append(f"LIST: {r.status_code} {r.text[:200]}")
        return
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    for item in ElementTree.fromstring(r.content).iterfind("s3:Contents", ns):
        key, etag = item.findtext("s3:Key", "", ns), item.findtext("s3:ETag", "", ns).strip('"')
        out.listed += 1
        if key not in KEYS or etag not in out.bodies:
            out.problems.append(f"LIST: {key} with ETag {etag} was never written")


async def _client(
    cluster: SimCluster, s3: S3, client: int, rng: Random, out: Outcome, until: float
) -> None:
    while cluster.clock.now < until:
        await asyncio.sleep(rng.uniform(0.05, 1.0))
        key = rng.choice(KEYS)
        action = rng.random()
        if action < 0.4:
            await _call(s3, out, client, "put", key, rng.randbytes(rng.choice(SIZES)))
        elif action < 0.55:
            await _call(s3, out, client, "delete", key)
        elif action < 0.95:
            await _call(s3, out, client, "get", key)
        else:
            await _list(s3, out)


async def _kill_or_restart_gateway(cluster: SimCluster, s3: S3, rng: Random, out: Outcome) -> str:
    """kill -9 of the second gateway, once it is in the middle of a request (or after 2 s
    of waiting for one), or its restart."""
    conn = s3.connection
    if not conn.alive:
        cluster.net.restart(SECOND_GATEWAY)
        conn.revive(_app(cluster, SECOND_GATEWAY, rng))
        return "restart"
    if not any(not t.done() for t in conn.tasks):
        conn.started.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.started.wait(), 2.0)
            await asyncio.sleep(rng.uniform(0.0, 0.002))  # somewhere inside that request
    cluster.net.crash(SECOND_GATEWAY)
    killed = conn.kill()
    out.killed_in_flight += killed
    return f"kill ({killed} in flight)"


async def _faults(cluster: SimCluster, second: S3, rng: Random, out: Outcome, until: float) -> None:
    meta = cluster.meta
    assert isinstance(meta, RaftMeta)
    while cluster.clock.now < until:
        await asyncio.sleep(rng.uniform(0.5, 4.0))
        action = rng.choice(FAULTS)
        up = sorted(set(cluster.servers) - cluster.down)
        victim: object = None
        if action == "crash" and len(cluster.down) < PROFILE.m - 1:  # writes need k+1
            victim = rng.choice(up)
            await cluster.crash(victim)
        elif action == "restart" and cluster.down:
            victim = rng.choice(sorted(cluster.down))
            cluster.restart(victim)
        elif action == "failover" or action.startswith("meta-"):
            victim = await meta.inject(action.removeprefix("meta-"), rng)
        elif action == "loss":
            victim = rng.choice([0.0, 0.0, 0.02])
            cluster.net.configure(drop_prob=victim)
        elif action == "gateway":
            victim = await _kill_or_restart_gateway(cluster, second, rng, out)
        if victim is not None:
            out.schedule.append(f"{cluster.clock.now:.3f} {action} {victim}")


async def _scenario(seed: int) -> Outcome:
    rng = Random(seed)
    cluster = SimCluster(
        SERVERS, Random(rng.getrandbits(64)), meta_options=MAINTENANCE, gc_config=GC, raft=True
    )
    setup = await cluster.start()
    await setup.execute(SetErasureProfile(PROFILE))
    await setup.execute(PutUser("root", True))
    await setup.execute(PutAccessKey(ACCESS_KEY, SECRET, "root"))
    gateways = [_gateway(cluster, None, rng), _gateway(cluster, SECOND_GATEWAY, rng)]
    created = await gateways[0].request("PUT", f"/{BUCKET}")
    assert created.status_code == 200, created.text
    out = Outcome(HistoryRecorder(lambda: cluster.clock.now))
    until = cluster.clock.now + WORKLOAD_S
    await asyncio.gather(
        *(
            _client(cluster, gateways[n % 2], n, Random(rng.getrandbits(64)), out, until)
            for n in range(CLIENTS)
        ),
        _faults(cluster, gateways[1], Random(rng.getrandbits(64)), out, until),
    )
    if not gateways[1].connection.alive:
        await _kill_or_restart_gateway(cluster, gateways[1], rng, out)
    await cluster.heal()
    await asyncio.sleep(SETTLE_S)
    for key in KEYS:  # the final state: read after every other request
        before = dict(out.statuses)
        await _call(gateways[0], out, CLIENTS, "get", key)
        answered = {c for c, n in out.statuses.items() if n != before.get(c, 0)}
        if not answered or not answered <= {200, 404}:  # healed: every object reads
            out.problems.append(f"final GET {key}: {sorted(answered) or 'reset'}")
    await _list(gateways[0], out)
    out.trace_digest = hashlib.sha256(repr(cluster.net.trace).encode()).hexdigest()
    for s3 in gateways:
        await s3.http.aclose()
        await asyncio.gather(*s3.connection.tasks, return_exceptions=True)
    await cluster.stop()
    assert not out.problems, out.problems[:5]
    verdict = check(out.history.operations())
    assert verdict.ok, verdict.explain()
    return out


def _run(seed: int) -> Outcome:
    with replayable(seed):
        return run(_scenario(seed))


@pytest.mark.parametrize("seed", fast_seeds(1))
def test_s3_through_the_simulated_cluster(seed: int) -> None:
    out = _run(seed)
    ok = out.statuses.get(200, 0) + out.statuses.get(204, 0)
    assert ok > 100 and out.listed and out.schedule, (out.statuses, out.listed, out.schedule)


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds(4))
def test_s3_through_the_simulated_cluster_long(seed: int) -> None:
    _run(seed)


def test_an_s3_run_replays_exactly() -> None:
    first, second = _run(fast_seeds()[0]), _run(fast_seeds()[0])
    assert (first.trace_digest, first.schedule, first.statuses) == (
        second.trace_digest,
        second.schedule,
        second.statuses,
    )
