"""Path traversal through the static files and the page routes: nothing outside web/static comes out."""

from __future__ import annotations

from yarl import URL

from tests.attacks.loopback import target
from tests.attacks.verdict import Verdict

TOPIC = "traversal"
SECRETS = (b"root:x:", b"SQLite format", b"PRIVATE KEY", b"keyset", b"rsk_", b"[project]", b"import ")

PATHS = [
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/..%5c..%5c..%5cetc%5cpasswd",
    "/static/....//....//....//etc/passwd",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/static/..%00/etc/passwd",
    "/static//etc/passwd",
    "/static/../../pyproject.toml",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/../../roomserver/keys.py",
    "/static/../../data/keys/keyset.json",
    "/static/%2e%2e/%2e%2e/data/roomserver.sqlite3",
    "/static/%2e%2e/%2e%2e/data/api-keys",
    "/static/../templates/signin.html",
    "/join/..%2f..%2fetc%2fpasswd",
    "/j/..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
]


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    async with target() as t:
        async with t.http.get("/static/favicon.svg") as control:  # the route is there: refusals below are real
            if control.status != 200:
                return [Verdict(TOPIC, "control: a real static file is served", False, f"{control.status}")]
        for path in PATHS:
            async with t.http.get(URL(t.base + path, encoded=True), allow_redirects=False) as r:
                body = await r.read()
                leaked = [s.decode() for s in SECRETS if s in body]
                ok = r.status in (400, 403, 404) and not leaked
                v.append(Verdict(TOPIC, f"GET {path}", ok, f"{r.status}{' leaked ' + ','.join(leaked) if leaked else ''}"))
    return v
