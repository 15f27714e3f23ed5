"""One attack's outcome, shared by every module of the attack suite."""

from __future__ import annotations

from typing import NamedTuple


class Verdict(NamedTuple):
    topic: str      # the module's topic, e.g. "tls", "signin", "jwt"
    attack: str     # what was tried, one short line
    blocked: bool   # True when the server refused it as documented
    detail: str     # what the server answered (status, close code, error code)
