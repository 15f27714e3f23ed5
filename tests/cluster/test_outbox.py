"""The outbox on two real nodes (PostgreSQL, Redis): each webhook event and e-mail goes out once, whichever node
queued it; a node killed with messages owed leaves them to the other."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from tests.cluster.harness import HEADERS, Cluster, why_not
from tests.ops.test_mailer import SENDER, Inbox, free_port, iso
from tests.ops.test_outbox_restart import pending, until
from tests.ops.test_webhooks import SECRET, Receiver
from tests.support import joined


async def webhook_events(cluster: Cluster, node: int, rooms: int) -> None:
    """``rooms`` rooms on ``node``, each: started, two joined, two left (5 events)."""
    async with aiohttp.ClientSession(base_url=cluster.nodes[node].base) as http:
        for _ in range(rooms):
            room = await cluster.room()
            a, _ = await joined(http, HEADERS, room, "counsellor")
            b, _ = await joined(http, HEADERS, room, "citizen")
            for sock in (b, a):
                await sock.send({"type": "leave"})
                await sock.closed()


async def emails(cluster: Cluster, node: int, first: int, n: int) -> None:
    start = int(time.time()) + 3 * 86400
    for i in range(first, first + n):
        room = await cluster.room(scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        await cluster.api("POST", f"/api/v1/rooms/{room}/invites", node=node,
                          json={"role": "citizen", "name": f"Person {i}", "email": f"p{i}@example.org"})


async def test_two_nodes_send_each_message_once_and_a_killed_node_is_taken_over(tmp_path: Path) -> None:
    if why_not():
        pytest.skip(why_not())
    hook_port, smtp_port = free_port(), free_port()
    cluster = Cluster(tmp_path, size=2,
                      ROOMSERVER_WEBHOOKS_URLS=f"http://127.0.0.1:{hook_port}/hook",
                      ROOMSERVER_WEBHOOKS_SECRET=SECRET, ROOMSERVER_WEBHOOKS_BACKOFF_SECONDS="0.05",
                      ROOMSERVER_WEBHOOKS_MAX_BACKOFF_SECONDS="0.5", ROOMSERVER_WEBHOOKS_MAX_ATTEMPTS="100",
                      ROOMSERVER_MAIL_SMTP_HOST="127.0.0.1", ROOMSERVER_MAIL_SMTP_PORT=str(smtp_port),
                      ROOMSERVER_MAIL_SECURITY="none", ROOMSERVER_MAIL_FROM_ADDRESS=SENDER,
                      ROOMSERVER_MAIL_BACKOFF_SECONDS="0.05", ROOMSERVER_MAIL_MAX_BACKOFF_SECONDS="0.5",
                      ROOMSERVER_MAIL_MAX_ATTEMPTS="100", ROOMSERVER_OUTBOX_POLL_SECONDS="0.05")
    receiver, inbox = Receiver(), Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    try:
        await cluster.start()
        # Both nodes up, both receivers up: messages queued on either node arrive once.
        await receiver.start(hook_port)
        controller.start()
        await asyncio.gather(webhook_events(cluster, 0, 2), webhook_events(cluster, 1, 2))
        await asyncio.gather(emails(cluster, 0, 0, 5), emails(cluster, 1, 5, 5))
        await until(lambda: len(receiver.events) >= 20 and len(inbox.messages) >= 10, "delivery on two nodes")
        await until(lambda: pending(cluster.db_url) == Counter(), "the outbox emptied")
        # Receivers down; more messages on both nodes; node 1 is killed with its share owed.
        await receiver.server.close()
        controller.stop()
        await asyncio.gather(webhook_events(cluster, 0, 2), webhook_events(cluster, 1, 2))
        await asyncio.gather(emails(cluster, 0, 10, 5), emails(cluster, 1, 15, 5))
        await until(lambda: pending(cluster.db_url) == Counter({"webhook": 20, "email": 10}), "queued")
        cluster.nodes[1].kill(signal.SIGKILL)
        assert cluster.nodes[1].wait_exit() == -signal.SIGKILL
        await receiver.start(hook_port)
        controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        await until(lambda: len(receiver.events) >= 40 and len(inbox.messages) >= 20, "node 0 sends node 1's share")
        await until(lambda: pending(cluster.db_url) == Counter(), "the outbox emptied")
        await asyncio.sleep(0.5)
        ids = Counter(e["id"] for e in receiver.events)
        assert len(ids) == 40 and set(ids.values()) == {1}, "an event went out twice or not at all"
        assert sorted(m["To"] for m in inbox.messages) == sorted(f"p{i}@example.org" for i in range(20))
        assert receiver.bad == []
    finally:
        cluster.stop()
        controller.stop()
        if receiver.server is not None:
            await receiver.server.close()
