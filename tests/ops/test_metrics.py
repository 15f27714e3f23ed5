"""``/metrics``: strict Prometheus text, counters that move with what happens, refused to strangers."""

from __future__ import annotations

import re

import aiohttp
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tests.support import RawSocket, create_room, joined

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf'^({_NAME})(?:\{{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\}})? '
                     r'(-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|\+Inf|-Inf|NaN))$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse(text: str) -> dict[str, dict]:
    """A strict parser of the text format: every line is HELP, TYPE or a sample of a declared family."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and help_, line
            families.setdefault(name, {"samples": []})["help"] = help_
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert "type" not in families.get(name, {}), f"TYPE twice: {name}"
            families.setdefault(name, {"samples": []})["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            family = families.get(name) or families.get(base)
            assert family is not None and "type" in family, f"sample of an undeclared family: {line}"
            family["samples"].append((name, dict(_LABEL.findall(labels)), float(value)))
    return families


def value(families: dict, name: str, **labels: str) -> float:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    for sample_name, sample_labels, v in families.get(name, families.get(base, {"samples": []}))["samples"]:
        if sample_name == name and all(sample_labels.get(k) == w for k, w in labels.items()):
            return v
    return 0.0


async def scrape(http: aiohttp.ClientSession, **kwargs) -> dict:
    r = await http.get("/metrics", **kwargs)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await r.text())


async def test_metrics_parse_and_move_with_what_happens(server, services, http, api_headers):
    before = await scrape(http)
    for name in ("roomserver_rooms_live", "roomserver_participants", "roomserver_joins_total",
                 "roomserver_token_refusals_total", "roomserver_signal_messages_relayed_total",
                 "roomserver_resumes_total", "roomserver_calls_total", "roomserver_call_seconds_to_accept",
                 "roomserver_socket_disconnects_total"):
        assert name in before, name
    assert value(before, "roomserver_rooms_live") == 0

    room = await create_room(http, api_headers)
    a, wa = await joined(http, api_headers, room, "counsellor", "Clara Beraterin")
    b, wb = await joined(http, api_headers, room, "citizen", "Frau Mustermann")
    # Two relayed signals.
    for _ in range(2):
        await a.send({"type": "signal", "to": wb["self"]["id"], "data": {"candidate": None}})
        await b.expect("signal")
    # A refused join: a garbage token is refused with a code.
    bad = await RawSocket.open(http)
    await bad.send({"type": "join", "token": "not-a-token"})
    assert (await bad.next())["type"] == "error"
    code = bad.seen[-1]["code"]
    await bad.closed()
    # A drop and a resume.
    secret = wb["resume_secret"]
    await b.ws.close()
    again = await RawSocket.open(http)
    await again.send({"type": "resume", "secret": secret})
    assert (await again.next())["type"] == "welcome"

    after = await scrape(http)
    text = await (await http.get("/metrics")).text()
    assert room not in text and wa["self"]["id"] not in text and "Clara" not in text  # no identifiers
    assert value(after, "roomserver_rooms_live") == 1
    assert value(after, "roomserver_participants", role="counsellor") == 1
    assert value(after, "roomserver_participants", role="citizen") == 1
    assert value(after, "roomserver_joins_total", role="counsellor") == 1
    assert value(after, "roomserver_joins_total", role="citizen") == 1
    assert value(after, "roomserver_signal_messages_relayed_total") == 2
    assert value(after, "roomserver_token_refusals_total", reason=code) == 1
    assert value(after, "roomserver_resumes_total") == 1
    assert value(after, "roomserver_socket_disconnects_total", cause="not_joined") >= 1
    assert value(after, "roomserver_socket_disconnects_total", cause="normal") \
        + value(after, "roomserver_socket_disconnects_total", cause="lost") >= 1
    assert value(after, "roomserver_rooms_started_total") == 1

    await a.send({"type": "end"})
    await a.closed()
    ended = await scrape(http)
    assert value(ended, "roomserver_rooms_live") == 0
    assert value(ended, "roomserver_rooms_ended_total", reason="moderator") == 1
    await again.close()


async def test_call_outcomes_and_time_to_accept(server, services):
    """Call events from the bus feed the outcome counter and the histogram (the desk flow is tested in test_desk)."""
    from roomserver.ops.metrics import METRICS_KEY
    bus = services.events
    bus.publish("call.requested", "r1", call="c1")
    bus.publish("call.accepted", "r1", call="c1", seconds_to_accept=3.5)
    bus.publish("call.requested", "r1", call="c2")
    bus.publish("call.timed_out", "r1", call="c2")
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        fams = await scrape(http)
    assert value(fams, "roomserver_calls_total", outcome="accepted") == 1
    assert value(fams, "roomserver_calls_total", outcome="timed_out") == 1
    assert value(fams, "roomserver_calls_requested_total") == 2
    assert value(fams, "roomserver_call_seconds_to_accept_bucket", le="2.0") == 0
    assert value(fams, "roomserver_call_seconds_to_accept_bucket", le="5.0") == 1
    assert value(fams, "roomserver_call_seconds_to_accept_bucket", le="+Inf") == 1
    assert value(fams, "roomserver_call_seconds_to_accept_count") == 1
    assert value(fams, "roomserver_call_seconds_to_accept_sum") == 3.5
    assert server.app[METRICS_KEY].to_accept.collect()[0].samples[-2].value == 1  # the _count sample


async def test_refused_from_other_addresses_without_the_token(server_factory):
    token = "m" * 40
    srv, _ = await server_factory(ROOMSERVER_METRICS_ALLOW_FROM="10.0.0.0/8", ROOMSERVER_METRICS_TOKEN=token)
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        r = await http.get("/metrics")
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
        r = await http.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status == 403
        fams = await scrape(http, headers={"Authorization": f"Bearer {token}"})
        assert "roomserver_rooms_live" in fams
    srv2, _ = await server_factory(ROOMSERVER_METRICS_ALLOW_FROM="10.0.0.0/8")
    async with aiohttp.ClientSession(base_url=str(srv2.make_url(""))) as http:
        assert (await http.get("/metrics", headers={"Authorization": "Bearer anything"})).status == 403


def test_histogram_buckets_are_cumulative():
    registry = CollectorRegistry()
    h = Histogram("x", "help", buckets=(1.0, 2.0), registry=registry)
    for v in (0.5, 1.5, 3.0):
        h.observe(v)
    fams = parse(generate_latest(registry).decode())
    assert [s[2] for s in fams["x"]["samples"][:3]] == [1, 2, 3]
