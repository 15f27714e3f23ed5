"""kill -9 of a real server with 50 webhook events and 20 e-mails queued and both receivers down:
after the restart, with the receivers up, every one arrives exactly once.

On the embedded default (SQLite, one node: the new process releases its predecessor's claims at
start) and on PostgreSQL with Redis (a cluster of one: the dead node's claims are released once
its registration in Redis has expired)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psycopg
import pytest
from aiosmtpd.controller import Controller

from tests.cluster.harness import HEADERS, Cluster, why_not
from tests.ops.test_mailer import SENDER, Inbox, free_port, iso
from tests.ops.test_webhooks import SECRET, Receiver
from tests.support import joined

WAIT = 60.0


def pending(db: Path | str) -> Counter[str]:
    """Messages due within a minute and not yet delivered, read straight from the database."""
    soon = int(time.time() * 1000) + 60000
    query = "SELECT kind, COUNT(*) FROM outbox WHERE state = 'pending' AND next_at <= %d GROUP BY kind" % soon
    if isinstance(db, str):
        with psycopg.connect(db) as conn:
            rows = conn.execute(query).fetchall()
    else:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            rows = conn.execute(query).fetchall()
    return Counter({kind: n for kind, n in rows})


async def until(predicate, what: str, extra=None) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {extra() if extra else ''}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_kill_9_with_webhooks_and_emails_queued_loses_and_repeats_nothing(tmp_path: Path, engine: str) -> None:
    if engine == "postgresql" and why_not():
        pytest.skip(why_not())
    hook_port, smtp_port = free_port(), free_port()
    cluster = Cluster(tmp_path, size=1, single=engine == "sqlite",
                      ROOMSERVER_WEBHOOKS_URLS=f"http://127.0.0.1:{hook_port}/hook",
                      ROOMSERVER_WEBHOOKS_SECRET=SECRET, ROOMSERVER_WEBHOOKS_BACKOFF_SECONDS="0.05",
                      ROOMSERVER_WEBHOOKS_MAX_BACKOFF_SECONDS="0.5", ROOMSERVER_WEBHOOKS_MAX_ATTEMPTS="100",
                      ROOMSERVER_MAIL_SMTP_HOST="127.0.0.1", ROOMSERVER_MAIL_SMTP_PORT=str(smtp_port),
                      ROOMSERVER_MAIL_SECURITY="none", ROOMSERVER_MAIL_FROM_ADDRESS=SENDER,
                      ROOMSERVER_MAIL_BACKOFF_SECONDS="0.05", ROOMSERVER_MAIL_MAX_BACKOFF_SECONDS="0.5",
                      ROOMSERVER_MAIL_MAX_ATTEMPTS="100", ROOMSERVER_OUTBOX_POLL_SECONDS="0.05")
    receiver, inbox = Receiver(), Inbox()
    controller: Controller | None = None
    try:
        await cluster.start()
        node = cluster.nodes[0]
        db = tmp_path / "data0" / "roomserver.sqlite3" if engine == "sqlite" else cluster.db_url
        # 50 webhook events (10 rooms: started, two joined, two left) and 20 e-mailed invitations, while
        # nobody receives.
        async with aiohttp.ClientSession(base_url=node.base) as http:
            for _ in range(10):
                room = await cluster.room()
                a, _ = await joined(http, HEADERS, room, "counsellor")
                b, _ = await joined(http, HEADERS, room, "citizen")
                for sock in (b, a):
                    await sock.send({"type": "leave"})
                    await sock.closed()
        start = int(time.time()) + 3 * 86400
        for i in range(20):
            room = await cluster.room(scheduled_start=iso(start), scheduled_end=iso(start + 1800))
            await cluster.api("POST", f"/api/v1/rooms/{room}/invites",
                              json={"role": "citizen", "name": f"Person {i}", "email": f"p{i}@example.org"})
        await until(lambda: pending(db) == Counter({"webhook": 50, "email": 20}), "everything queued", lambda: pending(db))
        node.kill(signal.SIGKILL)
        assert node.wait_exit() == -signal.SIGKILL
        # The receivers come up; the server starts again and sends what it owed, once.
        await receiver.start(hook_port)
        controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        node.start()
        await node.wait_ready()
        await until(lambda: len(receiver.events) >= 50 and len(inbox.messages) >= 20, "delivery after restart")
        await until(lambda: pending(db) == Counter(), "the outbox emptied")
        await asyncio.sleep(0.5)  # anything sent twice would arrive by now
        assert receiver.bad == []
        ids = Counter(e["id"] for e in receiver.events)
        assert len(ids) == 50 and set(ids.values()) == {1}
        assert Counter(e["type"] for e in receiver.events) == {"room.started": 10, "participant.joined": 20,
                                                               "participant.left": 20}
        assert sorted(m["To"] for m in inbox.messages) == sorted(f"p{i}@example.org" for i in range(20))
    finally:
        cluster.stop()
        if controller is not None:
            controller.stop()
        if receiver.server is not None:
            await receiver.server.close()
