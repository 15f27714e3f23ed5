"""The OpenAPI document against the application, and schemathesis against the live server.

First the document and the router must describe the same operations. Then
schemathesis loads the document from the running server's
``/api/v1/openapi.json`` and throws generated requests (valid and invalid) at
every operation, over real HTTP on loopback, checking that nothing answers 5xx,
that every status, content type, header and body is the documented one, and
that every error has the common shape. Hypothesis is derandomized and bounded,
so a run is the same on every machine.

schemathesis' client (requests) is blocking, while the server runs on the
test's event loop, so the fuzzing runs in a worker thread and the loop keeps
serving.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from roomserver.api import openapi
from roomserver.domain.auth import hash_password
from roomserver.services import Services

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})
# Examples per operation and generation mode (positive and negative).
MAX_EXAMPLES = 30
FUZZ_USER, FUZZ_PASSWORD = "fuzz-counsellor", "fuzz-password-0123456789"


def _is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/readyz")


def _routed_operations(server: TestServer) -> set[tuple[str, str]]:
    found = set()
    for route in server.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if _is_api_path(path) and route.method != "HEAD":
            found.add((path, route.method.lower()))
    return found


def _documented_operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, method): op for path, item in openapi.document()["paths"].items()
            for method, op in item.items() if method in HTTP_METHODS}


# the document against the router ----------------------------------------------

async def test_every_route_is_documented_and_every_documented_operation_is_routed(server: TestServer) -> None:
    routed = _routed_operations(server)
    documented = set(_documented_operations())
    assert routed, "no API routes registered"
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations without a route"


async def test_the_served_document_is_the_module_document(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        served = await resp.json()
    assert served == json.loads(json.dumps(openapi.document()))
    assert served["openapi"].startswith("3.1")


def test_document_lists_the_errors_each_kind_of_operation_can_produce() -> None:
    doc = openapi.document()
    operation_ids = [op["operationId"] for op in _documented_operations().values()]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for (path, method), op in _documented_operations().items():
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        secured = op.get("security", doc["security"]) != []
        if secured:
            assert {"400", "401", "403"} <= set(responses), f"{where}: authentication errors undocumented"
            assert "WWW-Authenticate" in responses["401"].get("headers", {}), where
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= set(responses), f"{where}: body errors undocumented"
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            assert "404" in responses, f"{where}: 404 undocumented"
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{where} {status}: not the error shape"


def test_links_name_existing_operations_and_parameters() -> None:
    by_id = {op["operationId"]: op for op in _documented_operations().values()}
    links = [link for op in by_id.values() for response in op["responses"].values()
             for link in response.get("links", {}).values()]
    assert links
    for link in links:
        target = by_id[link["operationId"]]
        names = {p["name"] for p in target.get("parameters", [])}
        assert set(link["parameters"]) <= names, link


# schemathesis against the live server -----------------------------------------

def _error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every error body is exactly {"error": {"code": str, "message": str}}."""
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def _no_traceback(ctx: Any, response: Any, case: Any) -> None:
    assert b"Traceback" not in response.content, "a stack trace reached the client"


def _security_headers(ctx: Any, response: Any, case: Any) -> None:
    headers = {name.lower(): values[0] for name, values in response.headers.items()}
    csp = headers.get("content-security-policy", "")
    assert csp and "'unsafe-inline'" not in csp, csp
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "no-referrer"
    assert "no-store" in headers.get("cache-control", "")


CUSTOM_CHECKS = [_error_shape, _no_traceback, _security_headers]


@dataclass
class FuzzReport:
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    calls: int = 0
    seconds: float = 0.0


def _schemathesis_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
        "checks": {
            # Rules JSON Schema cannot state (a start before the end, printable text, limits
            # from the server's config) refuse well-formed values with a documented 422.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]},
        },
    })


def _fuzz(base_url: str, api_auth: dict[str, Any], cookie_auth: dict[str, Any],
          fixed: dict[str, list[dict[str, Any]]]) -> FuzzReport:
    """Every operation, positive and negative, ``MAX_EXAMPLES`` each; runs in a worker thread."""
    started = time.monotonic()
    report = FuzzReport()
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json", config=_schemathesis_config())
    schema.config.update(base_url=base_url)
    runs = []
    for result in schema.get_all_operations():
        operation = result.ok()
        op_id = operation.definition.raw["operationId"]
        auth = cookie_auth if op_id in ("whoAmI", "signOut") else api_auth
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies = [operation.as_strategy(mode)]
            if mode is GenerationMode.POSITIVE:
                strategies += [operation.as_strategy(mode, **known) for known in fixed.get(op_id, [])]
            runs.append((operation, op_id, mode, auth, st.one_of(strategies)))
    # Sign-out last: it ends the session the other session calls use.
    runs.sort(key=lambda run: run[1] == "signOut")

    for operation, op_id, mode, auth, strategy in runs:
        try:
            _exercise(strategy, auth, op_id, report)
        except Unsatisfiable:
            # Nothing to make invalid: no parameters and no body (the health checks).
            if mode is not GenerationMode.NEGATIVE or operation.body or any(True for _ in operation.iter_parameters()):
                report.failures.append(f"{operation.label} ({mode.value}): no case could be generated")
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report all
            report.failures.append(f"{operation.label} ({mode.value}): {exc}")
    report.seconds = time.monotonic() - started
    return report


def _exercise(strategy: st.SearchStrategy[schemathesis.Case], auth: dict[str, Any], op_id: str,
              report: FuzzReport) -> None:
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def exercise(case: schemathesis.Case) -> None:
        response = case.call_and_validate(**auth, additional_checks=CUSTOM_CHECKS, timeout=30)
        report.calls += 1
        report.statuses[op_id].add(response.status_code)

    exercise()


async def _seed(http: aiohttp.ClientSession, services: Services, api_headers: dict[str, str]
                ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Real rooms and invites for the positive cases to reach, and a counsellor session."""
    rooms = []
    for n in range(4):
        async with http.post("/api/v1/rooms", json={"title": f"Fuzz {n}"}, headers=api_headers) as resp:
            assert resp.status == 201
            rooms.append((await resp.json())["id"])
    invites = []
    for room_id in rooms[:2]:
        for role in ("citizen", "expert"):
            async with http.post(f"/api/v1/rooms/{room_id}/invites", json={"role": role, "name": "Fuzz"},
                                 headers=api_headers) as resp:
                assert resp.status == 201
                invites.append({"room_id": room_id, "jti": (await resp.json())["jti"]})
    open_rooms = [{"path_parameters": {"room_id": r}} for r in rooms[:2]]
    fixed = {
        "getRoom": open_rooms, "listInvites": open_rooms, "createInvite": open_rooms,
        "endRoom": [{"path_parameters": {"room_id": r}} for r in rooms[2:]],
        "revokeInvite": [{"path_parameters": invite} for invite in invites],
        "signIn": [{"body": {"username": FUZZ_USER, "password": FUZZ_PASSWORD}}],
    }
    await services.store.directory.add_department("fuzz-office", "Fuzz Office", "county", services.now())
    expert = await services.store.directory.add_account(username="fuzz-expert", display_name="Fuzz Expert", role="expert",
                                                  department_id="fuzz-office", password_hash=None,
                                                  now=services.now())
    fixed["updateAccount"] = [{"path_parameters": {"account_id": expert.id}, "body": {"display_name": "Fuzz"}}]
    fixed["createDirectInvite"] = [{"path_parameters": {"room_id": r}, "body": {"account_id": expert.id}}
                                   for r in rooms[:2]]
    fixed["createAccount"] = [{"body": {"username": "fuzz-new", "display_name": "Neu", "role": "interpreter",
                                        "languages": ["dgs"]}}]
    # A failed e-mail in the outbox to send again (this server has no SMTP server: it fails again each time).
    now_ms = services.now() * 1000
    row_id = await services.store.outbox.add(kind="email", lane="invite:fuzz", payload='{"jti": "fuzz", "type": '
                                             '"invitation"}', now=now_ms)
    await services.store.outbox.claim("fuzz", now=now_ms, lease_ms=60_000)
    await services.store.outbox.failed(row_id, "fuzz", now_ms, "email_not_configured")
    fixed["retryOutboxMessage"] = [{"path_parameters": {"message_id": str(row_id)}}]
    async with http.post("/api/v1/rooms", json={"title": "Fuzz moved"}, headers=api_headers) as resp:
        moved = (await resp.json())["id"]
    tomorrow = datetime.fromtimestamp(services.now() + 86400, timezone.utc)
    fixed["rescheduleRoom"] = [{"path_parameters": {"room_id": moved},
                                "body": {"scheduled_start": tomorrow.isoformat(),
                                         "scheduled_end": (tomorrow + timedelta(hours=1)).isoformat()}}]
    await services.store.directory.add_account(username=FUZZ_USER, display_name="Fuzz Counsellor", role="counsellor",
                                         department_id=None, password_hash=hash_password(FUZZ_PASSWORD),
                                         now=services.now())
    async with http.post("/api/v1/session", json={"username": FUZZ_USER, "password": FUZZ_PASSWORD}) as resp:
        assert resp.status == 200
        csrf = (await resp.json())["csrf_token"]
        session_id = resp.cookies["rs_session"].value
    return fixed, {"cookies": {"rs_session": session_id}, "headers": {"X-CSRF-Token": csrf}}


async def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
        server: TestServer, http: aiohttp.ClientSession, services: Services, api_headers: dict[str, str]) -> None:
    fixed, cookie_auth = await _seed(http, services, api_headers)
    base_url = str(server.make_url("")).rstrip("/")
    report = await asyncio.to_thread(_fuzz, base_url, {"headers": api_headers}, cookie_auth, fixed)
    print(f"schemathesis: {report.calls} requests in {report.seconds:.1f} s;",
          {op_id: sorted(seen) for op_id, seen in report.statuses.items()})
    assert not report.failures, "\n\n".join(report.failures)
    # Loaded from the server, schemathesis leaves out the operation that served it the document.
    operation_ids = {op["operationId"] for op in _documented_operations().values()} - {"openapi"}
    assert set(report.statuses) == operation_ids, "operations schemathesis did not reach"
    # Not a vacuous run: every operation was also driven to success, and refused bad input.
    unsuccessful = {op_id for op_id, seen in report.statuses.items() if not any(200 <= s < 300 for s in seen)}
    assert unsuccessful == set(), report.statuses
    assert 422 in report.statuses["createRoom"] and 422 in report.statuses["createInvite"]
