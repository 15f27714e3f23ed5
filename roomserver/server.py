"""Running the server: logging, event loop, listening socket, graceful stop.

The banner goes to stdout for the person who started the server: where to
open it and, on a first start only, the generated API key and demo sign-ins.
Logs go to stderr and never carry tokens, names or addresses.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys


from . import logs
from .app import create_app
from .bootstrap import FirstStart
from .config import Settings
from .connections import GuardedRunner, GuardedSite
from .keys import KeySet, KeySetError
from .services import Services, build_services
from .tls import server_context

log = logging.getLogger("roomserver")

# Appointments start on the hour: a burst of sockets must wait in the kernel's queue, not be
# dropped (aiohttp's default of 128 lets a dropped connection cost its browser a 1 s retry;
# the kernel caps this at net.core.somaxconn).
LISTEN_BACKLOG = 1024


def setup_logging(level: str) -> None:
    logs.setup(level, sys.stderr)  # every value escaped: a client cannot write a line of its own
    # aiohttp's default access log carries the client address; ours does not.
    logging.getLogger("aiohttp.access").setLevel(level)
    # The PostgreSQL pool repeats every failed reconnect over several lines; the store says it once.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


async def _watch_keys(services: Services, interval: float = 5.0) -> None:
    """Pick up keys rotated or removed by ``roomserver keys`` while running."""
    path = services.settings.keys_dir / "keyset.json"
    last = path.stat().st_mtime_ns if path.exists() else 0
    while True:
        await asyncio.sleep(interval)
        try:
            mtime = path.stat().st_mtime_ns
            if mtime != last:
                keyset = KeySet.open(services.settings.keys_dir)
                services.keyset = keyset
                services.codec.keyset = keyset
                last = mtime
                log.info("key set reloaded; active key %s", keyset.active.kid)
        except (OSError, KeySetError) as exc:
            log.warning("key set not reloaded: %s", exc)


def banner(settings: Settings, first: FirstStart, port: int) -> str:
    url = settings.server.public_url.rstrip("/") if settings.server.public_url else \
        settings.base_url.rsplit(":", 1)[0] + f":{port}"
    lines = [f"Raumserver läuft / room server running: {url}/",
             f"  Anmelden / sign in: {url}/signin",
             f"  health: {url}/healthz   API: {url}/api/v1/openapi.json"]
    if first.api_key:
        lines.append(f"  API key (saved in {first.api_key_path}, shown only now): {first.api_key}")
    if first.demo_logins:
        lines.append("  Demo-Anmeldungen / demo sign-ins (shown only now, write them down):")
        lines += [f"    {d.role:12} {d.username:10} {d.password}" for d in first.demo_logins]
    elif not first.api_key:
        lines.append("  sign-ins: as before (new demo passwords: ./run roomserver seed-demo --reset-passwords)")
    unset = settings.privacy.placeholders()
    if unset:
        lines.append("  ACHTUNG / NOTE: the citizens' data notice shows example details; set [privacy] "
                     + ", ".join(unset))
    return "\n".join(lines)


async def _run(settings: Settings, first: FirstStart) -> None:
    services = build_services(settings)
    app = create_app(services)
    runner = GuardedRunner(app, handle_signals=False, shutdown_timeout=5)
    try:
        await runner.setup()
    except ConnectionError as exc:  # Redis (cluster mode) unreachable at start: one line, exit 2
        services.close()
        raise StartupError(str(exc)) from None
    tls = server_context(settings.server.tls_cert_file, settings.server.tls_key_file) \
        if settings.server.tls_cert_file else None
    site = GuardedSite(runner, settings.server.host, settings.server.port, ssl_context=tls, reuse_address=True,
                       backlog=LISTEN_BACKLOG)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.server.port
    # What start-up built (app, routes, templates, imported modules) lives as long as the
    # process: move it out of the collector's reach, so a full collection walks only what
    # the sockets and rooms made since. Otherwise each one walks every object of the app.
    gc.collect()
    gc.freeze()
    print(banner(settings, first, port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_keys(services))
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        watcher.cancel()
        await runner.cleanup()
        services.close()


class StartupError(Exception):
    """Something the settings name cannot be used at start (e.g. Redis unreachable); one line says what."""


def serve(settings: Settings, first: FirstStart) -> int:
    setup_logging(settings.server.log_level)
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(_run(settings, first))
        else:
            asyncio.run(_run(settings, first))
    except StartupError as exc:
        print(f"roomserver: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"roomserver: cannot listen on {settings.server.host}:{settings.server.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return 0
