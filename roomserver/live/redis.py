"""Live state of a cluster in Redis: node registry, room ownership, fenced snapshots, node channels.

* Every node registers ``<prefix>:node:<id>`` with a lifetime of
  ``[cluster] node_ttl_seconds`` and renews it three times per lifetime. A node
  whose registration lapsed is lost: its rooms may be taken over.
* ``<prefix>:owner:<key>`` names the owner of a room (or the switchboard). It is
  taken with a compare-and-set that succeeds only when nobody owns the key or
  the owner's registration has lapsed (a Lua script, so the check and the set
  are one step). Ownership needs no renewal of its own: it lives as long as the
  owner's registration.
* ``<prefix>:snap:<key>`` holds the last snapshot; a save succeeds only while the
  saver owns the key (fencing: a node that was cut off and came back cannot
  overwrite what the new owner wrote).
* ``<prefix>:to:<node>`` is each node's channel; one publisher task per node
  sends queued messages in order, many per round trip when traffic is high.

Redis lost: the node reports itself unhealthy (the edges close their sockets
with 1013 so that clients resume on a healthy node, and ``/readyz`` says 503)
and reconnects every half second. Back: if its registration survived, it goes
on; if not (it was cut off too long, or Redis restarted empty), it takes a new
node id and re-claims only the rooms nobody else took meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import deque
from typing import Any, Callable, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from ..config import Settings
from ..store import Store, Tx
from . import LiveUnavailable, NotOwner

log = logging.getLogger("roomserver.live")

T = TypeVar("T")

_OWNER = """
local o = redis.call('GET', KEYS[1])
if o and redis.call('EXISTS', ARGV[1] .. o) == 1 then return o end
return false
"""
_CLAIM = """
local o = redis.call('GET', KEYS[1])
if o == ARGV[1] then return 1 end
if o and redis.call('EXISTS', ARGV[2] .. o) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[3] ~= '' then redis.call('SADD', KEYS[2], ARGV[3]) end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
_SAVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
_FORGET = """
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then redis.call('SREM', KEYS[3], ARGV[2]) end
return 1
"""
_ORPHANS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local o = redis.call('GET', ARGV[1] .. id)
  if (not o) or redis.call('EXISTS', ARGV[2] .. o) == 0 then table.insert(out, id) end
end
return out
"""
_NODES = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then table.insert(out, id) else redis.call('SREM', KEYS[1], id) end
end
return out
"""

MAX_BATCH = 512  # messages in one publishing round trip at most
MAX_CONNECTIONS = 32  # per node, besides the pub/sub connection
# Redis Enterprise's maintenance notifications (on by default in redis-py 8) mean nothing to a
# plain Redis, which refuses the command: off.
_PLAIN = {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}
RETRY_SECONDS = 0.5
# A registered node whose channel has had no subscriber for this long is gone: a killed process's
# connections close at once, so Redis drops its subscription the same instant (see ``orphans``).
SILENT_SECONDS = 1.0


def node_name(configured: str) -> str:
    """This process's node id: the configured (or host) name and a random suffix per process."""
    base = configured or f"{socket.gethostname()}-{os.getpid()}"
    return f"{base}.{secrets.token_hex(3)}"


class RedisLive:
    """The cluster's ``Live``."""

    clustered = True

    def __init__(self, settings: Settings, store: Store) -> None:
        c = settings.cluster
        self.store = store
        self._base = c.node_id
        self.node = node_name(c.node_id)
        self._prefix = c.key_prefix
        self._ttl_ms = int(c.node_ttl_seconds * 1000)
        self._url = settings.redis_url
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._deliver: Callable[[bytes], None] = lambda message: None
        self._health_callbacks: list[Callable[[bool], None]] = []
        self._healthy = False
        self._outbox: deque[tuple[bytes, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._closing = False
        self._scripts: dict[str, Any] = {}
        self._publisher: Any = None  # the publishing connection (see _flush)
        self.published = 0
        self.received = 0
        self._silent: dict[str, float] = {}  # registered nodes seen without a subscriber, since when

    # -- keys -------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    def channel(self, node: str) -> bytes:
        return self._k("to", node).encode()

    # -- life -------------------------------------------------------------------------------

    async def start(self, deliver: Callable[[bytes], None]) -> None:
        """Connect, register, subscribe. Raises ``ConnectionError`` with one line when Redis cannot be reached."""
        self._deliver = deliver
        # A bounded pool that makes a burst wait for a connection instead of failing ("too many
        # connections" is not Redis being away); pub/sub and the publisher hold one each besides.
        pool = aioredis.BlockingConnectionPool.from_url(self._url, max_connections=MAX_CONNECTIONS, timeout=5,
                                                        socket_connect_timeout=3, socket_timeout=5,
                                                        health_check_interval=10, **_PLAIN)
        self._redis = aioredis.Redis(connection_pool=pool, decode_responses=False)
        for name, lua in (("owner", _OWNER), ("claim", _CLAIM), ("release", _RELEASE), ("save", _SAVE),
                          ("forget", _FORGET), ("orphans", _ORPHANS), ("nodes", _NODES)):
            self._scripts[name] = self._redis.register_script(lua)
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise ConnectionError(f"cannot reach Redis at {describe(self._url)}: {first_line(exc)}") from None
        self._tasks = [asyncio.create_task(self._publish_loop(), name="live-publish"),
                       asyncio.create_task(self._receive_loop(), name="live-receive"),
                       asyncio.create_task(self._renew_loop(), name="live-renew")]

    async def _connect(self) -> None:
        assert self._redis is not None
        await self._register(fresh=True)
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel(self.node), self._k("all").encode())
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except (RedisError, OSError):
                pass
        self._pubsub = pubsub
        self._set_health(True)

    async def _register(self, *, fresh: bool) -> bool:
        """Write (or renew) this node's registration; False if a renewal found it lapsed."""
        assert self._redis is not None
        info = orjson.dumps({"node": self.node, "pid": os.getpid(), "since": int(time.time())})
        ok = await self._redis.set(self._k("node", self.node), info, px=self._ttl_ms, nx=fresh, xx=not fresh)
        if fresh:
            await self._redis.sadd(self._k("nodes"), self.node)
        return bool(ok)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self._redis is not None:
            try:
                await self._flush()
                if self._publisher is not None:
                    await self._publisher.disconnect()
                await self._redis.delete(self._k("node", self.node))  # a clean stop: lost at once, no wait
                await self._redis.srem(self._k("nodes"), self.node)
            except (RedisError, OSError):
                pass
            if self._pubsub is not None:
                try:
                    await self._pubsub.aclose()
                except (RedisError, OSError):
                    pass
            await self._redis.aclose()

    @property
    def healthy(self) -> bool:
        return self._healthy

    def on_health(self, callback: Callable[[bool], None]) -> None:
        self._health_callbacks.append(callback)

    def _set_health(self, healthy: bool) -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            log.info("live state: connected to Redis as node %s", self.node)
        else:
            log.warning("live state: Redis lost; closing live sockets until it is back")
        for callback in self._health_callbacks:
            try:
                callback(healthy)
            except Exception:  # noqa: BLE001 - one listener must not stop the others
                log.exception("live health listener failed")

    def _lost(self, exc: BaseException) -> None:
        if not isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            log.error("live state: Redis refused a command: %s", first_line(exc))
            return  # Redis answered: it is not away (a bug or a limit; the caller gets LiveUnavailable)
        if not self._closing and self._healthy:
            log.warning("live state: Redis error: %s", first_line(exc))
            self._set_health(False)
            self._forget_connections()

    def _forget_connections(self) -> None:
        """Every open connection may be to the Redis that went away: none is used again."""
        publisher, self._publisher = self._publisher, None
        tasks = [publisher.disconnect()] if publisher is not None else []
        if self._redis is not None:
            tasks.append(self._redis.connection_pool.disconnect())
        for coro in tasks:
            task = asyncio.ensure_future(coro)
            task.add_done_callback(lambda t: t.exception())

    async def _renew_loop(self) -> None:
        interval = self._ttl_ms / 3000
        while True:
            await asyncio.sleep(interval if self._healthy else RETRY_SECONDS)
            try:
                if self._healthy:
                    if not await self._register(fresh=False):
                        log.warning("live state: this node's registration had lapsed; rejoining as a new node")
                        self._set_health(False)
                        self.node = node_name(self._base)
                        await self._connect()
                else:
                    assert self._redis is not None
                    await self._redis.ping()
                    if not await self._register(fresh=False):
                        self.node = node_name(self._base)  # lost too long, or Redis restarted: a new node
                    await self._connect()
            except (RedisError, OSError) as exc:
                self._lost(exc)

    async def _receive_loop(self) -> None:
        while True:
            if not self._healthy or self._pubsub is None:
                await asyncio.sleep(RETRY_SECONDS / 5)
                continue
            try:
                async for message in self._pubsub.listen():  # blocks until a message; no timeout per read
                    if message.get("type") != "message":
                        continue
                    self._unpack(message["data"])
            except (RedisError, OSError) as exc:
                self._lost(exc)

    def _unpack(self, data: bytes) -> None:
        """One published payload: several node messages, each behind its 4-byte length (see ``_flush``)."""
        view = memoryview(data)
        at, end = 0, len(data)
        while at + 4 <= end:
            size = int.from_bytes(view[at:at + 4], "big")
            at += 4
            self.received += 1
            try:
                self._deliver(bytes(view[at:at + size]))
            except Exception:  # noqa: BLE001 - one bad message must not stop the node's inbox
                log.exception("live state: a node message failed")
            at += size

    # -- messages ----------------------------------------------------------------------------

    def send(self, node: str, message: bytes) -> None:
        self._outbox.append((self.channel(node), message))
        self._wake.set()

    def broadcast(self, message: bytes) -> None:
        self._outbox.append((self._k("all").encode(), message))
        self._wake.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            # One more turn of the loop first: the sockets whose frames arrived in the same
            # wake-up queue theirs too, and they all leave in one round trip.
            await asyncio.sleep(0)
            self._wake.clear()
            try:
                await self._flush()
            except (RedisError, OSError) as exc:
                self._outbox.clear()  # the sockets those messages were for are being closed
                self._lost(exc)

    async def _flush(self) -> None:
        """Send what is queued: one PUBLISH per destination, carrying every message queued for it.

        Under load many messages wait while the previous write is under way; putting them
        into one payload (each behind its length) costs Redis and the receiving node one
        message instead of many, and keeps them in order. The publisher's own connection
        has replies switched off (``CLIENT REPLY OFF``): nothing to wait for or parse.
        """
        while self._outbox:
            batches: dict[bytes, list[bytes]] = {}
            for _ in range(min(MAX_BATCH, len(self._outbox))):
                channel, message = self._outbox.popleft()
                batches.setdefault(channel, []).append(len(message).to_bytes(4, "big") + message)
            publisher = self._publisher or await self._open_publisher()
            packed = publisher.pack_commands([("PUBLISH", channel, b"".join(parts))
                                              for channel, parts in batches.items()])
            try:
                await publisher.send_packed_command(packed, check_health=False)
            except BaseException:
                self._publisher = None
                await publisher.disconnect()
                raise
            self.published += len(batches)

    async def _open_publisher(self) -> Any:
        """A connection of its own for publishing, with replies off (fire and forget, in order)."""
        settings = parse_url(self._url)
        connection_class = settings.pop("connection_class", aioredis.Connection)
        publisher = connection_class(**settings, socket_connect_timeout=3, socket_timeout=5, **_PLAIN)
        await publisher.connect()
        await publisher.send_command("CLIENT", "REPLY", "OFF", check_health=False)
        self._publisher = publisher
        return publisher

    # -- ownership and snapshots ----------------------------------------------------------------

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise LiveUnavailable(first_line(exc)) from None

    async def owner(self, key: str) -> str | None:
        found = await self._script("owner", [self._k("owner", key)], [self._k("node", "")])
        return found.decode() if found else None

    async def claim(self, key: str) -> bool:
        member = key.split(":", 1)[1] if key.startswith("room:") else ""
        ok = await self._script("claim", [self._k("owner", key), self._k("rooms")],
                                [self.node, self._k("node", ""), member])
        return bool(ok)

    async def release(self, key: str) -> None:
        await self._script("release", [self._k("owner", key)], [self.node])

    async def persist(self, key: str, snapshot: bytes | None, unit: Callable[[Tx], T] | None) -> T | None:
        result = await self.store.write(unit) if unit is not None else None
        if snapshot is not None:
            saved = await self._script("save", [self._k("owner", key), self._k("snap", key)], [self.node, snapshot])
            if not saved:
                raise NotOwner(key)
        return result

    async def load(self, key: str) -> bytes | None:
        assert self._redis is not None
        try:
            return await self._redis.get(self._k("snap", key))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise LiveUnavailable(first_line(exc)) from None

    async def load_many(self, keys: list[str]) -> list[bytes | None]:
        assert self._redis is not None
        if not keys:
            return []
        try:
            return list(await self._redis.mget([self._k("snap", key) for key in keys]))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise LiveUnavailable(first_line(exc)) from None

    async def forget(self, key: str) -> None:
        member = key.split(":", 1)[1] if key.startswith("room:") else ""
        await self._script("forget", [self._k("owner", key), self._k("snap", key), self._k("rooms")],
                           [self.node, member])

    async def rooms(self) -> list[str]:
        assert self._redis is not None
        try:
            return sorted(m.decode() for m in await self._redis.smembers(self._k("rooms")))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise LiveUnavailable(first_line(exc)) from None

    async def orphans(self) -> list[str]:
        """Rooms whose owner is gone; nodes whose process died are deregistered first (``_reap_silent``)."""
        try:
            await self._reap_silent()
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise LiveUnavailable(first_line(exc)) from None
        found = await self._script("orphans", [self._k("rooms")], [self._k("owner", "room:"), self._k("node", "")])
        return [m.decode() for m in found]

    async def nodes(self) -> set[str]:
        found = await self._script("nodes", [self._k("nodes")], [self._k("node", "")])
        return {m.decode() for m in found}

    async def alive(self, node: str) -> bool:
        assert self._redis is not None
        try:
            return bool(await self._redis.exists(self._k("node", node)))
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise LiveUnavailable(first_line(exc)) from None

    async def _reap_silent(self) -> None:
        """Deregister nodes whose process is gone before their registration lapses.

        A registration lapses only after ``node_ttl_seconds``, but a killed process's
        subscription to its own channel ends the moment its connection closes. A
        registered node whose channel had no subscriber at two looks ``SILENT_SECONDS``
        apart is deregistered now, so its rooms are taken over seconds sooner. (A node
        that was cut off from Redis that long has closed its sockets with 1013 already
        and comes back under a new id, exactly as after a lapse.)
        """
        assert self._redis is not None
        others = sorted(n for n in await self.nodes() if n != self.node)
        if not others:
            self._silent = {}
            return
        counts = await self._redis.pubsub_numsub(*[self.channel(n) for n in others])
        now, silent = time.monotonic(), {}
        for node, (_, subscribers) in zip(others, counts):
            if subscribers:
                continue
            since = silent[node] = self._silent.get(node, now)
            if now - since >= SILENT_SECONDS:
                await self._redis.delete(self._k("node", node))
                log.warning("live state: node %s no longer listens; deregistered (its rooms are taken over)", node)
                del silent[node]
        self._silent = silent


def describe(url: str) -> str:
    """host:port/db of a Redis URL, without credentials."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
