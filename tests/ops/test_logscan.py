"""The whole-run log scan (tests/conftest.py) can fail: it finds each kind of leak."""

from tests.conftest import leaks


def test_the_scan_finds_tokens_addresses_and_names_and_passes_clean_lines():
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjaXRpemVuIn0.c2lnbmF0dXJlLXZhbHVl"
    lines = [f"roomserver.http: join with {token}",
             "aiohttp.server: Error handling request from 127.0.0.1",
             "roomserver.ws.signalling: seat of Ayşe dropped",
             "aiohttp.access: GET /j/K7QM-3XWD-9FHT 200 2616 0.004s",
             'aiohttp.access: "GET /healthz" 200 12 0.001s',
             "aiohttp.access: GET /j/… 200 2616 0.004s"]
    assert leaks(lines) == lines[:4]
