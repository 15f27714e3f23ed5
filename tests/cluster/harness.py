"""Real cluster nodes for the tests: ``python -m roomserver serve`` processes sharing Redis and PostgreSQL.

Each cluster gets a PostgreSQL database of its own (tests/pg.py), a Redis key
prefix of its own (deleted at the end), one key set and API key shared by its
nodes, and one loopback port per node. Nodes are killed with real signals.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests import pg

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("ROOMSERVER_TEST_REDIS", "redis://127.0.0.1:6379/0")
API_KEY = "rsk_cluster_" + "c" * 30
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def redis_unavailable(url: str = REDIS_URL) -> str | None:
    import redis
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - the reason goes into the skip
        return f"Redis not reachable at {url}: {exc}"
    return None


def why_not() -> str | None:
    """Why cluster tests cannot run here, or None."""
    return pg.unavailable() or redis_unavailable()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    """One server process of the cluster."""

    def __init__(self, cluster: "Cluster", index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cluster.workdir / f"node{index}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, **env: str) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSERVER_")}
        full.update(self.cluster.env)
        full.update({"ROOMSERVER_SERVER_DATA_DIR": str(self.cluster.workdir / f"data{self.index}"),
                     "ROOMSERVER_SERVER_PORT": str(self.port), "ROOMSERVER_CLUSTER_NODE_ID": f"node{self.index}"})
        full.update(env)
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "roomserver", "serve"], cwd=ROOT, env=full,
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"node {self.index} exited with {self.proc.returncode}: {self.tail()}")
                try:
                    async with http.get(f"{self.base}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"node {self.index} not ready in {timeout}s: {self.tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """N nodes on one PostgreSQL database and one Redis prefix; or (``single=True``) the embedded default:
    one node on a SQLite file in its data directory, no Redis."""

    def __init__(self, workdir: Path, size: int = 3, *, single: bool = False, **env: str) -> None:
        self.workdir = workdir
        self.single = single
        self.prefix = f"rstest-{secrets.token_hex(4)}"
        self.db_url = "" if single else pg.new_database()
        self.redis_url = "" if single else env.pop("redis_url", REDIS_URL)
        self.env = {"ROOMSERVER_STORE_URL": self.db_url, "ROOMSERVER_CLUSTER_REDIS_URL": self.redis_url,
                    "ROOMSERVER_CLUSTER_KEY_PREFIX": self.prefix,
                    "ROOMSERVER_TOKENS_KEYS_DIR": str(workdir / "keys"),
                    "ROOMSERVER_AUTH_API_KEYS": f"cluster:{API_KEY}",
                    "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false", "ROOMSERVER_STORE_SYNCHRONOUS": "normal",
                    "ROOMSERVER_CLUSTER_NODE_TTL_SECONDS": "3", "ROOMSERVER_CLUSTER_RPC_TIMEOUT_SECONDS": "1.5",
                    "ROOMSERVER_SERVER_LOG_LEVEL": "INFO"}
        self.env.update(env)
        self.nodes = [Node(self, i) for i in range(size)]

    async def start(self) -> "Cluster":
        for node in self.nodes:  # one after the other: the first generates the shared key set
            node.start()
            await node.wait_ready()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.kill(signal.SIGKILL)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        if self.single:
            return
        try:
            import redis
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        except Exception:  # noqa: BLE001 - a stopped test Redis has nothing left to clean
            pass
        pg.drop_database(self.db_url)

    async def api(self, method: str, path: str, node: int = 0, **kwargs: Any) -> Any:
        async with aiohttp.ClientSession() as http:
            async with http.request(method, f"{self.nodes[node].base}{path}", headers=HEADERS, **kwargs) as r:
                body = await r.json() if r.content_type == "application/json" else await r.text()
                assert r.status < 300, (r.status, body)
                return body

    async def room(self, **fields: Any) -> str:
        body = await self.api("POST", "/api/v1/rooms", json={"title": "Beratung", "waiting_room": False, **fields})
        return str(body["id"])

    async def token(self, room: str, role: str, name: str = "Test", node: int = 0, **fields: Any) -> str:
        body = await self.api("POST", f"/api/v1/rooms/{room}/invites", node=node,
                              json={"role": role, "name": name, **fields})
        return str(body["token"])

    def owner(self, room: str) -> int | None:
        """Index of the node that owns the room now (from Redis), or None."""
        import redis
        value = redis.Redis.from_url(self.redis_url).get(f"{self.prefix}:owner:room:{room}")
        if value is None:
            return None
        name = value.decode().split(".")[0]
        return int(name.removeprefix("node"))

    def urls(self, first: int) -> list[str]:
        """Every node's /ws, starting after ``first`` (where a participant goes when its node is lost)."""
        n = len(self.nodes)
        return [self.nodes[(first + k) % n].ws for k in range(1, n)]
