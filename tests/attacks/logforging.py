"""Log forging: a value from the network must not start a line of its own nor put a NUL in the log.

The server logs through ``roomserver.logs`` (installed by ``serve``); this module captures the
same records with the same formatter and reads what an operator would read.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re

from yarl import URL

from roomserver.logs import EscapingFormatter
from tests.attacks.loopback import target
from tests.attacks.verdict import Verdict

TOPIC = "logforging"
FORGED = "2026-01-01 00:00:00,000 INFO roomserver.audit: admin signed in"
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def judge(text: str) -> tuple[bool, str]:
    lines = text.splitlines()
    bad = [line for line in lines if not (RECORD.match(line) or line.startswith("    "))]
    forged = [line for line in lines if line.startswith("2026-01-01")]
    control = [c for c in ("\x00", "\r", "\x1b", "\u2028", "\x85") if c in text]
    ok = bool(lines) and not bad and not forged and not control
    return ok, f"{len(lines)} line(s){', forged: ' + repr(forged[0][:60]) if forged else ''}" \
               f"{', stray: ' + repr(bad[0][:60]) if bad else ''}{', control ' + repr(control) if control else ''}"


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter())
    loggers = [logging.getLogger(n) for n in ("aiohttp.access", "aiohttp.server", "roomserver")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        lg.propagate = False
    try:
        async with target() as t:
            paths = {
                "newline and a forged audit line in the path": "/static/x%0a" + FORGED.replace(" ", "%20"),
                "CR LF and a forged line": "/static/x%0d%0a" + FORGED.replace(" ", "%20"),
                "NUL in the path": "/static/y%00z",
                "Unicode line separator": "/static/x%E2%80%A8" + FORGED.replace(" ", "%20"),
                "NEL (U+0085)": "/static/x%C2%85" + FORGED.replace(" ", "%20"),
                "terminal escape sequence": "/static/%1b%5b2J%1b%5b31mALERT",
            }
            for attack, path in paths.items():
                out.seek(0)
                out.truncate()
                await t.http.get(URL(t.base + path, encoded=True))
                await asyncio.sleep(0.05)
                ok, detail = judge(out.getvalue())
                v.append(Verdict(TOPIC, attack, ok, detail))
            # A request line aiohttp cannot parse: its own error log must stay one escaped record too.
            out.seek(0)
            out.truncate()
            reader, writer = await asyncio.open_connection("127.0.0.1", t.server.port)
            writer.write(b"GET /x\x00\n" + FORGED.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(4096), 5.0)
            except asyncio.TimeoutError:
                pass
            writer.close()
            await asyncio.sleep(0.1)
            text = out.getvalue()
            ok, detail = judge(text) if text else (True, "nothing logged")
            v.append(Verdict(TOPIC, "a malformed request line carrying a forged line", ok, detail))
    finally:
        for lg, (level, propagate) in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
    return v
