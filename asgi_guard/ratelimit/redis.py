"""Counters on Redis or a Redis Cluster: one Lua script per decision, with bounded concurrency.

Each decision is one ``EVALSHA`` that reads every limit of the request, and hits all of them
only when all admit: atomic on the server, one round trip, nothing consumed by a refusal. The
keys of one decision share a hash tag (``{bucket/identity}``), so on a cluster they live in one
slot and the script runs on one node.

Concurrency to the storage is bounded by the layer: at most ``max_connections`` calls are in
flight per process (32 unless the URI says ``?max_connections=N``) and the others wait their
turn; the client's pool is sized to match, so it never refuses a connection under a burst.

``storage_timeout`` measures the storage, not the event loop. While calls are pending, a
heartbeat every 10 ms measures how much of each interval the loop was busy: the CPU time its
thread used, or how late the heartbeat ran if that is more (a stalled or descheduled loop).
That time is not counted. A call fails when it has waited ``storage_timeout`` of the rest and
no call has had an answer from the storage in that time. The check runs one iteration after its
timer, so replies read during a stalled iteration count first.
A socket timeout of ten timeouts (at least 5 s) bounds a call that a single hung node of a
cluster keeps waiting while the other nodes answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from .windows import FIXED, MOVING, SLIDING, figures

__all__ = ["RedisCounters"]

DEFAULT_CONNECTIONS: Final = 32
_BEAT: Final = 0.01

_IDIV: Final = """
local function idiv(a, b)
  local q = math.floor(a / b)
  if (q + 1) * b <= a then q = q + 1 elseif q * b > a then q = q - 1 end
  return q
end
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local ok = 1
local state = {}
local out = {}
"""

# ARGV: now (ms), cost, then (limit, window ms) per key. Reply: admitted, then two integers
# per key (the raw state windows.figures reads).
#
# Requests do not reach the server in the order their processes read the clock: one that read
# it before a window turned may run after one that read it after. Such a late request is
# decided in the newer window, at its start (the previous window weighs fully), and a moving
# window's late hit is stamped with the newest stamp: a late request is counted as strictly as
# the requests before it, never against a counter it would reset.
_SCRIPTS: Final = {
    SLIDING: _IDIV
    + """
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local index = idiv(now, window)
  local elapsed = now - index * window
  local saved = redis.call('HMGET', KEYS[i], 'i', 'p', 'c')
  local at, prev, curr = tonumber(saved[1]), 0, 0
  if at and at > index then index, elapsed = at, 0 end  -- a later window is saved: see below
  if at == index then prev, curr = tonumber(saved[2]), tonumber(saved[3])
  elseif at == index - 1 then prev = tonumber(saved[3]) end
  if idiv(prev * (window - elapsed), window) + curr + cost > limit then ok = 0 end
  state[i] = {index, prev, curr, window}
end
out[1] = ok
for i = 1, #KEYS do
  local s = state[i]
  if ok == 1 then
    s[3] = s[3] + cost
    redis.call('HSET', KEYS[i], 'i', s[1], 'p', s[2], 'c', s[3])
    redis.call('PEXPIREAT', KEYS[i], (s[1] + 2) * s[4])
  end
  out[2 * i], out[2 * i + 1] = s[2], s[3]
end
return out
""",
    FIXED: _IDIV
    + """
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local index = idiv(now, window)
  local saved = redis.call('HMGET', KEYS[i], 'i', 'n')
  local at, count = tonumber(saved[1]), 0
  if at and at > index then index = at end
  if at == index then count = tonumber(saved[2]) end
  if count + cost > limit then ok = 0 end
  state[i] = {index, count, window}
end
out[1] = ok
for i = 1, #KEYS do
  local s = state[i]
  if ok == 1 then
    s[2] = s[2] + cost
    redis.call('HSET', KEYS[i], 'i', s[1], 'n', s[2])
    redis.call('PEXPIREAT', KEYS[i], (s[1] + 1) * s[3])
  end
  out[2 * i], out[2 * i + 1] = s[2], 0
end
return out
""",
    MOVING: _IDIV
    + """
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local stamps = redis.call('LRANGE', KEYS[i], 0, limit - 1)
  local counted, newest = {}, now
  for j = 1, #stamps do
    local s = tonumber(stamps[j])
    if s > now - window then counted[#counted + 1] = s end
    if s > newest then newest = s end
  end
  if #counted + cost > limit then ok = 0 end
  state[i] = {counted, limit, window, newest}
end
out[1] = ok
for i = 1, #KEYS do
  local counted, limit, window, newest = state[i][1], state[i][2], state[i][3], state[i][4]
  if ok == 1 then
    for _ = 1, cost do
      redis.call('LPUSH', KEYS[i], newest)
      counted[#counted + 1] = newest
    end
    redis.call('LTRIM', KEYS[i], 0, limit - 1)
    redis.call('PEXPIREAT', KEYS[i], newest + window)
  end
  local stamp = 0
  if #counted > 0 then
    table.sort(counted, function(a, b) return a > b end)
    if ok == 1 then stamp = counted[#counted]
    elseif cost <= limit then stamp = counted[limit - cost + 1] or 0 end
  end
  out[2 * i], out[2 * i + 1] = #counted, stamp
end
return out
""",
}


def _client(uri: str, connections: int, hard: float) -> Any:
    """A redis-py asyncio client for a limits-style URI: ``redis://``, ``rediss://``,
    ``redis+unix://`` or ``redis+cluster://host:port,host:port``."""
    from redis.asyncio import Redis, RedisCluster
    from redis.asyncio.cluster import ClusterNode

    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower().removeprefix("async+")
    if scheme in ("redis+cluster", "rediss+cluster"):
        parts = urlsplit("redis://" + rest)
        ignored = sorted({pair.partition("=")[0] for pair in parts.query.split("&") if pair})
        ignored = [name for name in ignored if name != "max_connections"]
        if ignored or parts.path not in ("", "/"):
            # The cluster client takes none of them (TLS files, db, timeouts): accepted, a
            # ?ssl_ca_certs= would be dropped in silence.
            raise ValueError(
                f"a cluster URI takes only ?max_connections=N, not {ignored or parts.path}"
            )
        netloc = parts.netloc.rsplit("@", 1)
        userinfo = netloc[0] if len(netloc) == 2 else ""
        user, _, password = userinfo.partition(":")
        nodes = [ClusterNode(*_node(node)) for node in netloc[-1].split(",")]
        return RedisCluster(
            startup_nodes=nodes,
            username=unquote(user) or None,
            password=unquote(password) or None,
            ssl=scheme.startswith("rediss"),
            max_connections=connections,
            socket_timeout=hard,
            socket_connect_timeout=hard,
        )
    if scheme == "redis+unix":
        uri = "unix://" + rest
    elif scheme not in ("redis", "rediss"):
        raise ValueError(scheme)
    return Redis.from_url(
        uri, max_connections=connections, socket_timeout=hard, socket_connect_timeout=hard
    )


def _node(node: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` of a cluster URI; ValueError if it is none."""
    host, port = node, "6379"
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        if rest:
            if rest[:1] != ":":
                host = ""
            port = rest[1:]
    elif ":" in node:
        host, _, port = node.rpartition(":")
    # An empty host was read as localhost, and ":7000" as a host named ":7000".
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"cluster node {node!r} is not host:port")
    return host, int(port)


class RedisCounters:
    """Counters in Redis for one strategy; ``decide`` as ``MemoryCounters.decide``, async."""

    network = True

    def __init__(self, uri: str, strategy: str, timeout: float) -> None:
        query = urlsplit(uri.replace("+cluster", "")).query
        connections = DEFAULT_CONNECTIONS
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name == "max_connections" and value.isdigit() and int(value) > 0:
                connections = int(value)
        self.client = _client(uri, connections, max(5.0, 10 * timeout))
        self.strategy = strategy
        self.timeout = timeout
        self.connections = connections
        self._source = _SCRIPTS[strategy]
        self._sha: str | None = None
        self._loading = asyncio.Lock()
        self._slots = asyncio.Semaphore(connections)
        self._last_reply = 0.0  # on the loop's clock minus busy time
        self.busy = 0.0  # seconds the loop was busy while calls were pending
        self._beat_at = self._beat_cpu = 0.0  # the last heartbeat: loop time, thread CPU time
        self._beat_due = 0.0  # when the next one is due (uvloop's handles do not say)
        self._pending = 0
        self._beat: asyncio.TimerHandle | None = None
        self.prefix = "ag" + strategy[0] + ":{"  # ags / agm / agf: one key type each

    async def decide(
        self, items: Sequence[tuple[str, int, int]], cost: int, now: int
    ) -> tuple[bool, list[tuple[int, int]]]:
        args: list[int] = [now, cost]
        for _, limit, window in items:
            args += (limit, window)
        loop = asyncio.get_running_loop()
        self._pending += 1
        if self._beat is None:
            self._beat_at, self._beat_cpu = loop.time(), time.thread_time()
            self._beat_due = self._beat_at + _BEAT
            self._beat = loop.call_at(self._beat_due, self._heartbeat, loop)
        watch = _Watch(self, loop)
        try:
            async with asyncio.timeout(None) as deadline:
                watch.arm(deadline)
                async with self._slots:
                    reply = await self._script([key for key, _, _ in items], args)
                answered = loop.time()
                self._last_reply = answered - self.busy_at(answered)
        finally:
            watch.cancel()
            self._pending -= 1
        admitted = reply[0] == 1
        strategy = self.strategy
        results = []
        for position, (_, limit, window) in enumerate(items):
            a, b = int(reply[2 * position + 1]), int(reply[2 * position + 2])
            raw = (a,) if strategy == FIXED else (a, b)
            results.append(figures(strategy, raw, limit, window, cost, now, admitted))
        return admitted, results

    async def _script(self, keys: list[str], args: list[int]) -> Any:
        """EVALSHA, loading the script first. One task loads it while the others wait: redis-py's
        cluster client, asked to load it from many tasks at once, fails with closed transports."""
        from redis.exceptions import NoScriptError

        try:
            return await self.client.evalsha(await self._loaded(), len(keys), *keys, *args)
        except NoScriptError:  # the server restarted or failed over: load it again, once
            self._sha = None
            return await self.client.evalsha(await self._loaded(), len(keys), *keys, *args)

    async def _loaded(self) -> str:
        sha = self._sha
        if sha is None:
            async with self._loading:
                sha = self._sha
                if sha is None:
                    sha = self._sha = await self.client.script_load(self._source)
        return sha

    def _busy_since_beat(self, now: float) -> float:
        if self._beat is None:
            return 0.0
        cpu = time.thread_time() - self._beat_cpu
        return min(now - self._beat_at, max(cpu, now - self._beat_due))

    def busy_at(self, now: float) -> float:
        """The loop's busy time until ``now``, the current heartbeat interval included."""
        return self.busy + self._busy_since_beat(now)

    def _heartbeat(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self.busy += self._busy_since_beat(now)
        self._beat_at, self._beat_cpu = now, time.thread_time()
        self._beat_due = now + _BEAT
        self._beat = loop.call_at(self._beat_due, self._heartbeat, loop) if self._pending else None

    async def discard_idle(self) -> None:
        """Close pooled connections that predate a fault (a restarted server broke them)."""
        from redis.asyncio import RedisCluster

        if isinstance(self.client, RedisCluster):
            for node in self.client.get_nodes():
                await node.disconnect_free_connections()
        else:
            await self.client.connection_pool.disconnect(inuse_connections=False)

    async def aclose(self) -> None:
        await self.client.aclose()


class _Watch:
    """The timeout of one call, measured against the storage's progress (see the module)."""

    __slots__ = ("counters", "deadline", "handle", "loop", "queued")

    def __init__(self, counters: RedisCounters, loop: asyncio.AbstractEventLoop) -> None:
        self.counters = counters
        self.loop = loop
        now = loop.time()
        self.queued = now - counters.busy_at(now)
        self.handle: asyncio.Handle | None = None
        self.deadline: asyncio.Timeout | None = None

    def arm(self, deadline: asyncio.Timeout) -> None:
        self.deadline = deadline
        self.handle = self.loop.call_later(self.counters.timeout, self._fire)

    def _fire(self) -> None:
        # One more iteration first: replies read in this one wake their tasks in the next.
        self.handle = self.loop.call_soon(self._check)

    def _check(self) -> None:
        counters = self.counters
        now = self.loop.time()
        waited = now - counters.busy_at(now) - max(self.queued, counters._last_reply)
        if waited >= counters.timeout:
            assert self.deadline is not None
            self.handle = None
            self.deadline.reschedule(now)
        else:
            self.handle = self.loop.call_later(counters.timeout - waited, self._fire)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
