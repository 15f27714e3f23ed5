"""Log forging: a value from the network cannot start a line of its own or put a NUL in the log."""

from __future__ import annotations

import io
import logging
import re

from roomserver.logs import EscapingFormatter, escape

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def test_escape_keeps_a_value_on_one_line():
    assert escape("a\nb\r\x00c\x1b[31m\u2028d\x85") == "a\\x0ab\\x0d\\x00c\\x1b[31m\\u2028d\\x85"
    assert escape("Ayşe /static/app.js") == "Ayşe /static/app.js"


def test_a_traceback_cannot_pass_for_a_record():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter())
    log = logging.getLogger("tests.logs.traceback")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("x\n2026-01-01 00:00:00,000 INFO roomserver.audit: forged")
        except ValueError:
            log.exception("failed for %s", "/a\nb")
    finally:
        log.removeHandler(handler)
    first, *rest = out.getvalue().splitlines()
    assert LINE.match(first) and first.endswith("failed for /a\\x0ab")
    assert rest and all(line.startswith("    ") for line in rest)


async def test_a_forged_line_in_a_request_path_stays_in_its_own_record(server, http):
    """The attack run's finding: ``GET /static/x%0a<date> INFO roomserver.audit: …`` wrote a line."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter())
    access = logging.getLogger("aiohttp.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        forged = "2026-01-01 00:00:00,000 INFO roomserver.audit: admin signed in"
        await http.get("/static/x%0a" + forged.replace(" ", "%20"))
        await http.get("/static/y%00z%0d%0a")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    text = out.getvalue()
    assert "\x00" not in text and "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines
    assert not any(line.startswith("2026-01-01") for line in lines)
    assert "\\x0a2026-01-01" in lines[0] and "\\x00" in lines[1]
