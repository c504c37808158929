"""Rate limiting on a real 3-node Redis Cluster: exact under bursts, and never a 500."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from asgi_guard import RateLimitMiddleware

from .conftest import Channel, RecordingApp
from .conftest import http_scope as make_scope
from .redis_servers import RedisCluster

pytestmark = pytest.mark.anyio

STRATEGIES = ["sliding-window", "moving-window", "fixed-window"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    """Three masters on loopback ports, joined with redis-cli --cluster create."""
    nodes = RedisCluster().start()
    yield nodes
    nodes.stop()


@pytest.fixture
async def build(cluster: RedisCluster) -> AsyncIterator[Any]:
    """Layers on the cluster, keyed per test; their clients are closed after the test."""
    made: list[RateLimitMiddleware] = []

    def make(identity: str | None = None, **options: Any) -> RateLimitMiddleware:
        who = identity or uuid.uuid4().hex
        options.setdefault("key", lambda _scope: who)
        mw = RateLimitMiddleware(RecordingApp(), storage=cluster.url, **options)
        made.append(mw)
        return mw

    yield make
    for mw in made:
        await mw.aclose()


async def status_of(mw: Any, client: str = "203.0.113.1") -> int:
    scope = make_scope("/items", client=client)
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, scope)
    status: int = sent[0]["status"]
    return status


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_cluster_burst_admits_exactly_the_limit(build: Any, strategy: str) -> None:
    """1,000 concurrent requests against '50/day; 100/month' on a cluster: exactly 50, no
    500 from the cluster client's closed transports."""
    mw = build(limit="50/day; 100/month", strategy=strategy)
    statuses = await asyncio.gather(*(status_of(mw) for _ in range(1000)))
    assert (statuses.count(200), statuses.count(429)) == (50, 950)
    assert mw._breaker.trips == 0


async def test_two_clients_share_the_cluster_limit(build: Any) -> None:
    """Two layers (two processes) with their own cluster clients enforce one limit."""
    identity = uuid.uuid4().hex
    mws = [build(identity, limit="30/day") for _ in range(2)]
    statuses = await asyncio.gather(*(status_of(mws[i % 2]) for i in range(600)))
    assert statuses.count(200) == 30


async def test_many_clients_spread_over_the_nodes(build: Any) -> None:
    """Identities hash to slots on every node; each is limited exactly."""
    mw = build(limit="2/minute", key="ip")
    prefix = uuid.uuid4().int % 200
    clients = [f"10.{prefix}.0.{i}" for i in range(30)]
    statuses = await asyncio.gather(*(status_of(mw, c) for c in clients for _ in range(5)))
    assert (statuses.count(200), statuses.count(429)) == (60, 90)
    slots = {await mw.storage.client.cluster_keyslot(f"ags:{{d/ip={c}}}") for c in clients}
    owners = {mw.storage.client.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(owners) == 3
