"""Outbox throughput: how fast queued webhook events and e-mails are delivered from the durable outbox.

One real server (in this process, on loopback) with a webhook receiver and an SMTP server (aiosmtpd)
that both answer at once. ``--events`` events are published on the event bus (each one row per
endpoint), ``--emails`` citizens are invited by e-mail through the API; the figure is messages
delivered per second from the first queued to the last received (each costs a claim and a result
commit). ``--store postgresql://…`` runs it on PostgreSQL (an empty database).

  ./run bench outbox --events 500 --emails 100
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from roomserver import bootstrap, config
from roomserver.app import create_app
from roomserver.services import build_services

API_KEY = "rsk_bench_" + "b" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self) -> None:
        self.events = 0
        self.mails = 0

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.events += 1
        return web.Response(status=204)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.mails += 1
        return "250 OK"


async def main(args: argparse.Namespace) -> None:
    sink = Sink()
    hook_app = web.Application()
    hook_app.router.add_post("/hook", sink.hook)
    receiver = TestServer(hook_app, host="127.0.0.1", port=0)
    await receiver.start_server(access_log=None)
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"ROOMSERVER_SERVER_DATA_DIR": str(Path(tmp) / "data"), "ROOMSERVER_SERVER_PORT": "0",
               "ROOMSERVER_STORE_URL": args.store, "ROOMSERVER_STORE_SYNCHRONOUS": "normal",
               "ROOMSERVER_AUTH_API_KEYS": f"bench:{API_KEY}", "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false",
               "ROOMSERVER_SERVER_LOG_LEVEL": "WARNING",
               "ROOMSERVER_WEBHOOKS_URLS": str(receiver.make_url("/hook")), "ROOMSERVER_WEBHOOKS_SECRET": "s" * 32,
               "ROOMSERVER_WEBHOOKS_QUEUE_SIZE": str(max(args.events, 1)),
               "ROOMSERVER_MAIL_SMTP_HOST": "127.0.0.1", "ROOMSERVER_MAIL_SMTP_PORT": str(smtp_port),
               "ROOMSERVER_MAIL_SECURITY": "none", "ROOMSERVER_MAIL_FROM_ADDRESS": "bench@agentur.example",
               "ROOMSERVER_MAIL_REMINDERS": "", "ROOMSERVER_OUTBOX_POLL_SECONDS": "0.05"}
        settings = config.load(Path("config/roomserver.toml"), env=env)
        bootstrap.prepare(settings, 0)
        svc = build_services(settings)
        server = TestServer(create_app(svc), host="127.0.0.1", port=0)
        await server.start_server(access_log=None)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        try:
            async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
                start_at = datetime.fromtimestamp(time.time() + 3 * 86400, timezone.utc)
                body = {"title": "Bench", "scheduled_start": start_at.isoformat(),
                        "scheduled_end": start_at.replace(hour=(start_at.hour + 1) % 24).isoformat()
                        if start_at.hour < 23 else None}
                r = await http.post("/api/v1/rooms", json={k: v for k, v in body.items() if v}, headers=headers)
                room = (await r.json())["id"]
                t0 = time.perf_counter()
                for i in range(args.events):
                    svc.events.publish("room.started", f"r_bench{i}")
                while sink.events < args.events:
                    await asyncio.sleep(0.005)
                webhook_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                for i in range(args.emails):
                    r = await http.post(f"/api/v1/rooms/{room}/invites", headers=headers,
                                        json={"role": "citizen", "name": f"P {i}", "email": f"p{i}@example.org"})
                    assert r.status == 201, await r.text()
                while sink.mails < args.emails:
                    await asyncio.sleep(0.005)
                mail_s = time.perf_counter() - t0
        finally:
            await server.close()
            svc.close()
            controller.stop()
            await receiver.close()
    engine = "PostgreSQL" if args.store else "SQLite"
    print(f"outbox on {engine}: {args.events} webhook events in {webhook_s:.2f} s "
          f"({args.events / webhook_s:.0f}/s); {args.emails} e-mails (invited through the API, built, sent "
          f"over SMTP) in {mail_s:.2f} s ({args.emails / mail_s:.0f}/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--emails", type=int, default=100)
    parser.add_argument("--store", default="", help="empty: SQLite; or a postgresql:// URL of an empty database")
    asyncio.run(main(parser.parse_args()))
