"""Private Redis and PostgreSQL servers a test may stop and start: real processes, on loopback ports.

The machine's own Redis and PostgreSQL serve every other test; an outage test gets
servers of its own (``redis-server``; ``initdb`` + ``postgres`` run as the
``postgres`` user, which needs root), so stopping them disturbs nobody else.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.cluster.harness import free_port


class PrivateRedis:
    """``redis-server`` on a port of its own, nothing on disk: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        return None if shutil.which("redis-server") else "redis-server is not installed"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        for _ in range(100):
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (``initdb`` as the ``postgres`` user), trust auth on loopback."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rs-pg-"))
        self.proc: subprocess.Popen[bytes] | None = None
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        self.bin = Path(found[-1]).parent if found else None

    def unavailable(self) -> str | None:
        if self.bin is None:
            return "PostgreSQL server binaries are not installed"
        if os.geteuid() != 0:
            return "a private PostgreSQL needs root (to run it as the postgres user)"
        return None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        assert self.bin is not None
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user="postgres",
                       group="postgres", cwd=self.dir)

    def start(self) -> None:
        assert self.bin is not None
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.dir / "data"), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, user="postgres", group="postgres", cwd=self.dir)
        import psycopg
        for _ in range(200):
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.Error:
                time.sleep(0.05)
        raise AssertionError("private postgres did not start")

    def stop(self) -> None:
        """A fast shutdown (SIGINT): every connection is cut, as in an outage."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
