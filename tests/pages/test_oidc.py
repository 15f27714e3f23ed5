"""Staff sign-in through real OpenID Providers (npm oidc-provider, "Agentur" and "Kreis", on loopback).

Every refusal goes through the provider's real endpoints: the tests walk through its login form,
and where a token must be wrong the provider's token endpoint hands out a token the test signed
with the provider's own key (or a foreign one, or none).
"""

from __future__ import annotations

import re
import time

from joserfc.jwk import OctKey
from joserfc import jwt
from joserfc.jws import extract_compact

from tests.oidc.op import CLIENT_SECRET, new_key, query_of
from tests.oidc.world import PASSWORDS
from tests.staff import add_staff, csrf_field, csrf_meta, set_cookies
from tests.support import sql

FORWARD = re.compile(r'http-equiv="refresh" content="0;url=([^"]+)"')


def forward_target(html: str) -> str:
    match = FORWARD.search(html)
    assert match, html[:800]
    return match.group(1).replace("&amp;", "&")


async def signed_in_account(b) -> dict | None:
    r = await b.get("/api/v1/session")
    return (await r.json())["account"] if r.status == 200 else None


async def refused(world, b, provider: str, login: str, token_for=None) -> tuple[int, str]:
    """Sign in with the provider's token endpoint handing out ``token_for(nonce)``; (status, page)."""
    auth = await b.begin(provider)
    if token_for is not None:
        op = world.agentur if provider == "agentur" else world.kreis
        await op.next_id_token(token_for(op, query_of(auth)["nonce"]))
    callback = await b.login_at_provider(auth, login, PASSWORDS.get(login, "x"))
    r = await b.get(callback)
    return r.status, await r.text()


def code_of(html: str) -> str:
    match = re.search(r'<code id="oidc-error-code">([^<]+)</code>', html)
    assert match, html[:800]
    return match.group(1)


# who lands where ----------------------------------------------------------------

async def test_a_counsellor_of_the_agency_signs_in_and_lands_on_the_console(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    r = await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    html = await r.text()
    assert r.status == 200, html
    assert forward_target(html) == "/console"
    session = set_cookies(r)["rs_session"]["rs_session"]
    assert session["httponly"] and session["samesite"] == "Strict" and session["path"] == "/"
    assert r.headers["Cache-Control"] == "no-store"
    account = await signed_in_account(b)
    assert account["role"] == "counsellor" and account["username"] == "agentur:clara"
    assert account["display_name"] == "Clara Beraterin"
    assert (await b.get("/console")).status == 200
    events = await world.audit("auth.signed_in")
    assert events[-1].detail == {"via": "oidc", "provider": "agentur", "matched": "beratung", "created": True}
    rows = sql(world.svc, "SELECT provider, subject, password_hash FROM accounts WHERE username = ?", "agentur:clara")
    assert rows == [{"provider": "agentur", "subject": "clara", "password_hash": None}]


async def test_county_experts_get_their_department_and_interpreters_their_languages(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    r = await b.sign_in("kreis", "erik", PASSWORDS["erik"])
    assert forward_target(await r.text()) == "/desk"
    account = await signed_in_account(b)
    assert account["role"] == "expert" and account["department"] == "auslaenderbehoerde"
    b2 = world.browser()
    await b2.sign_in("kreis", "dora", PASSWORDS["dora"])
    dora = await signed_in_account(b2)
    assert dora["role"] == "interpreter"
    assert await world.svc.store.directory.languages(dora["id"]) == {"ar", "tr", "dgs"}


async def test_the_first_matching_entry_of_the_roles_table_decides(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    await b.sign_in("agentur", "ida", PASSWORDS["ida"])  # groups it-service and raumserver-admin
    assert (await signed_in_account(b))["role"] == "admin"


async def test_the_sign_in_page_has_a_button_per_provider_in_config_order(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    html = await (await b.get("/signin?next=/console")).text()
    agentur = html.index('id="signin-oidc-agentur"')
    kreis = html.index('id="signin-oidc-kreis"')
    assert agentur < kreis
    assert "Anmelden mit Agentur für Arbeit" in html and "Anmelden mit Kreisverwaltung" in html
    assert 'href="/signin/oidc/agentur?next=/console"' in html
    assert 'name="password"' in html  # local accounts stay on by default


async def test_a_wrong_password_at_the_provider_never_reaches_the_room_server(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    auth = await b.begin("agentur")
    r = await b.http.get(auth, allow_redirects=True)
    form = re.search(r'<form[^>]*action="([^"]+)"', await r.text())
    from urllib.parse import urljoin
    r = await b.http.post(urljoin(str(r.url), form.group(1)), data={"prompt": "login", "login": "clara",
                                                                    "password": "falsch"}, allow_redirects=False)
    assert r.status == 401
    assert await signed_in_account(b) is None


# refusals by mapping and account state ------------------------------------------

async def test_a_person_whose_groups_map_to_nothing_is_refused_with_a_clear_page(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    status, html = await refused(world, b, "agentur", "nemo")
    assert status == 403
    assert "hat keine Rolle in diesem Dienst" in html and code_of(html) == "unmapped"
    assert 'lang="de"' in html and "Traceback" not in html
    assert await signed_in_account(b) is None
    assert sql(world.svc, "SELECT id FROM accounts WHERE username LIKE ?", "agentur:nemo%") == []
    failed = await world.audit("auth.sign_in_failed")
    assert failed[-1].detail == {"via": "oidc", "provider": "agentur", "code": "unmapped"}


async def test_the_refusal_page_speaks_english_when_asked(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    auth = await b.begin("agentur")
    callback = await b.login_at_provider(auth, "nemo", PASSWORDS["nemo"])
    r = await b.get(callback, headers={"Accept-Language": "en"})
    html = await r.text()
    assert r.status == 403 and 'lang="en"' in html and "has no role in this service" in html


async def test_an_account_whose_mapping_goes_is_disabled_and_comes_back_when_it_returns(oidc_world) -> None:
    world = await oidc_world()
    first = world.browser()
    await first.sign_in("agentur", "clara", PASSWORDS["clara"])
    assert await signed_in_account(first) is not None
    world.agentur.users["clara"] = {**world.agentur.users["clara"], "groups": ["kantine"]}
    await world.agentur.restart()
    second = world.browser()
    status, html = await refused(world, second, "agentur", "clara")
    assert status == 403 and code_of(html) == "unmapped"
    assert await signed_in_account(first) is None  # the running session ended with the mapping
    rows = sql(world.svc, "SELECT disabled, disabled_by FROM accounts WHERE username = ?", "agentur:clara")
    assert rows == [{"disabled": 1, "disabled_by": "provider"}]
    world.agentur.users["clara"] = {**world.agentur.users["clara"], "groups": ["beratung"]}
    await world.agentur.restart()
    third = world.browser()
    await third.sign_in("agentur", "clara", PASSWORDS["clara"])
    assert (await signed_in_account(third))["role"] == "counsellor"
    assert len(sql(world.svc, "SELECT id FROM accounts WHERE username LIKE ?", "agentur:clara%")) == 1


async def test_an_account_an_administrator_disabled_stays_disabled(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    account = await signed_in_account(b)
    await world.svc.store.directory.update_account(account["id"], disabled=True)
    assert await signed_in_account(b) is None
    status, html = await refused(world, world.browser(), "agentur", "clara")
    assert status == 403 and code_of(html) == "account_disabled" and "gesperrt" in html


async def test_a_local_account_of_the_same_name_is_left_alone(oidc_world) -> None:
    world = await oidc_world()
    local = add_staff(world.svc, "agentur:clara", "operator")
    b = world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    account = await signed_in_account(b)
    assert account["id"] != local.id and account["role"] == "counsellor"
    assert (await world.svc.store.directory.account(local.id)).role == "operator"


# refusals of the ID token ----------------------------------------------------------

async def test_an_id_token_for_another_audience_is_refused(oidc_world) -> None:
    world = await oidc_world()
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce, aud="another-client")))
    assert status == 400 and code_of(html) == "wrong_audience" and "ungültig" in html


async def test_an_id_token_from_another_issuer_is_refused(oidc_world) -> None:
    world = await oidc_world()
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce, iss=world.kreis.issuer)))
    assert status == 400 and code_of(html) == "wrong_issuer"


async def test_a_wrong_or_missing_nonce_is_refused(oidc_world) -> None:
    world = await oidc_world()
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce + "x")))
    assert status == 400 and code_of(html) == "wrong_nonce"
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce, nonce=None)))
    assert status == 400 and code_of(html) == "wrong_nonce"


async def test_an_expired_id_token_is_refused(oidc_world) -> None:
    world = await oidc_world()
    now = int(time.time())
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce, iat=now - 1200, exp=now - 600)))
    assert status == 400 and code_of(html) == "expired"
    assert await world.audit("auth.signed_in") == []


async def test_a_token_from_a_provider_whose_clock_runs_ahead_is_refused_as_clock_skew(oidc_world) -> None:
    world = await oidc_world()
    now = int(time.time())
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce, iat=now + 900, exp=now + 1500)))
    assert status == 400 and code_of(html) == "clock_skew" and "Uhr" in html


async def test_alg_none_and_hs256_keyed_with_the_client_secret_are_refused(oidc_world) -> None:
    world = await oidc_world()

    def unsigned(op, nonce):
        import base64
        import json

        def part(data):
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(op.claims('clara', nonce))}."

    status, html = await refused(world, world.browser(), "agentur", "clara", unsigned)
    assert status == 400 and code_of(html) == "alg_not_allowed"

    def hmac_signed(op, nonce):
        return jwt.encode({"alg": "HS256"}, op.claims("clara", nonce), OctKey.import_key(CLIENT_SECRET))

    status, html = await refused(world, world.browser(), "agentur", "clara", hmac_signed)
    assert status == 400 and code_of(html) == "alg_not_allowed"
    assert await world.audit("auth.signed_in") == []


async def test_a_forged_signature_is_refused(oidc_world) -> None:
    world = await oidc_world()
    forger = new_key(world.agentur.keys[0].kid)  # the provider's key id, another key
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce), key=forger))
    assert status == 400 and code_of(html) == "bad_signature"


async def test_an_id_token_replayed_into_another_sign_in_is_refused(oidc_world) -> None:
    world = await oidc_world()
    await world.browser().sign_in("agentur", "clara", PASSWORDS["clara"])
    old = sql(world.svc, "SELECT id_token FROM sessions WHERE provider = 'agentur'")[0]["id_token"]
    status, html = await refused(world, world.browser(), "agentur", "clara", lambda op, nonce: old)
    assert status == 400 and code_of(html) == "wrong_nonce"


async def test_a_key_rotated_at_the_provider_is_fetched_at_once(oidc_world) -> None:
    """The key set is cached (keys_cache_seconds = 300 by default): a token naming a new key has it read again."""
    world = await oidc_world()
    op = world.agentur
    await world.browser().sign_in("agentur", "clara", PASSWORDS["clara"])
    await op.restart(keys=[new_key("agentur-2"), op.keys[0]])
    b = world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    assert await signed_in_account(b) is not None
    kids = {extract_compact(r["id_token"].encode()).headers()["kid"]
            for r in sql(world.svc, "SELECT id_token FROM sessions WHERE provider = 'agentur'")}
    assert kids == {"agentur-1", "agentur-2"}


async def test_a_key_removed_at_the_provider_is_refused_once_the_key_set_is_read_again(oidc_world) -> None:
    world = await oidc_world(agentur_extra="keys_cache_seconds = 0")
    op = world.agentur
    old_key = op.keys[0]
    await world.browser().sign_in("agentur", "clara", PASSWORDS["clara"])
    new = new_key("agentur-2")
    await op.restart(keys=[new, old_key])  # the provider signs with the new key, still publishes the old
    b = world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    assert await signed_in_account(b) is not None
    await op.restart(keys=[new])  # the old key removed
    status, html = await refused(world, world.browser(), "agentur", "clara",
                                 lambda op, nonce: op.sign(op.claims("clara", nonce), key=old_key))
    assert status == 400 and code_of(html) == "unknown_key"


# refusals of the callback ----------------------------------------------------------

async def test_a_replayed_callback_is_refused(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    callback = await b.login_at_provider(await b.begin("agentur"), "clara", PASSWORDS["clara"])
    assert (await b.get(callback)).status == 200
    r = await b.get(callback)
    html = await r.text()
    assert r.status == 400 and code_of(html) == "replayed_callback" and "schon abgeschlossen" in html


async def test_a_tampered_state_is_refused(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    callback = await b.login_at_provider(await b.begin("agentur"), "clara", PASSWORDS["clara"])
    state = query_of(callback)["state"]
    r = await b.get(callback.replace(state, state[:-2] + ("AA" if not state.endswith("AA") else "BB")))
    assert r.status == 400 and code_of(await r.text()) == "unknown_state"
    assert await signed_in_account(b) is None


async def test_a_callback_opened_in_another_browser_is_refused(oidc_world) -> None:
    world = await oidc_world()
    victim, attacker = world.browser(), world.browser()
    callback = await attacker.login_at_provider(await attacker.begin("agentur"), "clara", PASSWORDS["clara"])
    r = await victim.get(callback)
    assert r.status == 400 and code_of(await r.text()) == "wrong_browser"
    assert await signed_in_account(victim) is None


async def test_a_person_who_cancels_at_the_provider_is_told_so(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    callback = await b.cancel_at_provider(await b.begin("kreis"))
    assert query_of(callback)["error"] == "access_denied"
    r = await b.get(callback)
    html = await r.text()
    assert r.status == 400 and code_of(html) == "cancelled" and "abgebrochen" in html


async def test_a_provider_that_is_down_gets_a_clear_page(oidc_world) -> None:
    world = await oidc_world()
    await world.kreis.stop()
    b = world.browser()
    r = await b.get("/signin/oidc/kreis")
    html = await r.text()
    assert r.status == 502 and code_of(html) == "provider_unreachable" and "nicht erreichbar" in html
    assert "Kreisverwaltung" in html
    failed = await world.audit("auth.sign_in_failed")
    assert failed[-1].detail["code"] == "provider_unreachable"


async def test_a_wrong_client_secret_is_reported_as_wrong_configuration(oidc_world) -> None:
    world = await oidc_world(ROOMSERVER_OIDC_AGENTUR_CLIENT_SECRET="not-the-secret")
    status, html = await refused(world, world.browser(), "agentur", "clara")
    assert status == 502 and code_of(html) == "client_rejected" and "falsch eingerichtet" in html


async def test_discovery_naming_another_issuer_is_refused(oidc_world) -> None:
    world = await oidc_world()
    world.svc.oidc.providers["agentur"].settings.issuer = world.agentur.issuer.replace("127.0.0.1", "localhost")
    r = await world.browser().get("/signin/oidc/agentur")
    assert r.status == 502 and code_of(await r.text()) == "issuer_mismatch"


async def test_an_unknown_provider_is_not_found(oidc_world) -> None:
    world = await oidc_world()
    assert (await world.browser().get("/signin/oidc/nirgendwo")).status == 404
    assert (await world.browser().get("/signin/oidc/nirgendwo/callback?state=x&code=y")).status == 404


# sessions and sign-out ---------------------------------------------------------------

async def test_sign_out_ends_the_session_and_signs_out_at_the_provider(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    csrf = csrf_meta(await (await b.get("/console")).text())
    r = await b.post("/signout", data={"csrf_token": csrf})
    html = await r.text()
    assert r.status == 200
    target = forward_target(html)
    assert target.startswith(world.agentur.issuer + "/session/end?")
    params = query_of(target)
    assert params["id_token_hint"] and params["post_logout_redirect_uri"].endswith("/signin/oidc/signed-out")
    assert await signed_in_account(b) is None  # the local session ended before the provider is asked
    # At the provider: its confirmation form, then back to the room server's sign-in page.
    r = await b.http.get(target, allow_redirects=True)
    page = await r.text()
    form = re.search(r'<form[^>]*action="([^"]+)"', page)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    from urllib.parse import urljoin
    r = await b.http.post(urljoin(str(r.url), form.group(1)), data={**fields, "logout": "yes"}, allow_redirects=True)
    assert str(r.url).endswith("/signin?signed_out=1")
    events = [e.detail for e in await world.audit("auth.signed_out")]
    # Our sign-out, then the provider's back-channel call for the same session, which had already ended.
    assert events == [{"via": "oidc", "provider": "agentur"},
                      {"via": "backchannel", "provider": "agentur", "sessions": 0}]


async def test_the_session_lifetime_is_the_providers_capped_by_the_servers(oidc_world) -> None:
    world = await oidc_world(agentur_extra="session_lifetime_seconds = 900", ROOMSERVER_AUTH_SESSION_LIFETIME_SECONDS="3600",
                             kreis_extra="session_lifetime_seconds = 86400")
    b = world.browser()
    r = await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    assert set_cookies(r)["rs_session"]["rs_session"]["max-age"] == "900"
    r = await world.browser().sign_in("kreis", "erik", PASSWORDS["erik"])
    assert set_cookies(r)["rs_session"]["rs_session"]["max-age"] == "3600"
    spans = sorted(row["span"] for row in sql(world.svc, "SELECT expires_at - created_at AS span FROM sessions"))
    assert spans == [900, 3600]


async def test_with_local_accounts_off_the_form_is_gone_and_its_endpoints_refuse(oidc_world) -> None:
    world = await oidc_world(ROOMSERVER_AUTH_LOCAL_ACCOUNTS="false")
    local = add_staff(world.svc, "beratung", "counsellor")
    b = world.browser()
    r = await b.get("/signin")
    html = await r.text()
    assert 'name="password"' not in html and 'id="signin-oidc-agentur"' in html
    r = await b.post("/signin", data={"username": "beratung", "password": local.password,
                                      "csrf_token": csrf_field(html) if 'name="csrf_token"' in html else "x"})
    assert r.status == 403
    r = await b.post("/api/v1/session", json={"username": "beratung", "password": local.password})
    assert r.status == 403 and (await r.json())["error"]["code"] == "local_accounts_off"
    assert await signed_in_account(b) is None
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    assert (await signed_in_account(b))["role"] == "counsellor"


async def test_signing_out_at_the_provider_ends_the_session_here_by_back_channel(oidc_world) -> None:
    world = await oidc_world()
    b, other = world.browser(), world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    await other.sign_in("kreis", "erik", PASSWORDS["erik"])
    assert await signed_in_account(b) is not None
    # The person signs out at the provider itself (e.g. from another application): no id_token_hint.
    r = await b.http.get(f"{world.agentur.issuer}/session/end", allow_redirects=True)
    page = await r.text()
    form = re.search(r'<form[^>]*action="([^"]+)"', page)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    from urllib.parse import urljoin
    await b.http.post(urljoin(str(r.url), form.group(1)), data={**fields, "logout": "yes"}, allow_redirects=True)
    assert await signed_in_account(b) is None
    assert await signed_in_account(other) is not None  # the county's session is not touched
    events = await world.audit("auth.signed_out")
    assert events[-1].detail == {"via": "backchannel", "provider": "agentur", "sessions": 1}


async def test_a_forged_logout_token_ends_nothing(oidc_world) -> None:
    world = await oidc_world()
    b = world.browser()
    await b.sign_in("agentur", "clara", PASSWORDS["clara"])
    claims = {"iss": world.agentur.issuer, "aud": "roomserver", "iat": int(time.time()), "jti": "j1", "sub": "clara",
              "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    forged = world.agentur.sign(claims, key=new_key(world.agentur.keys[0].kid))
    r = await b.post("/signin/oidc/agentur/backchannel-logout", data={"logout_token": forged})
    assert r.status == 400 and (await r.json())["error_description"] == "bad_signature"
    r = await b.post("/signin/oidc/agentur/backchannel-logout", data={})
    assert r.status == 400
    assert await signed_in_account(b) is not None
    genuine = world.agentur.sign(claims)
    r = await b.post("/signin/oidc/agentur/backchannel-logout", data={"logout_token": genuine})
    assert r.status == 200 and await signed_in_account(b) is None


async def test_check_config_lists_the_uris_to_register_and_online_proves_the_providers_reachable(oidc_world) -> None:
    import asyncio
    import os
    import sys

    world = await oidc_world()

    async def check(*args: str) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSERVER_")}
        env.update({k: v for k, v in world.env.items() if k != "ROOMSERVER_STORE_URL"})
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "roomserver", "check-config", "--config",
                                                    str(world.config_path), *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await check()
    assert code == 0, err
    assert f"register there: redirect URI {world.rp_url}/signin/oidc/agentur/callback" in out
    assert f"back-channel logout URI {world.rp_url}/signin/oidc/kreis/backchannel-logout" in out
    assert "reachable" not in out  # offline by default
    code, out, err = await check("--online")
    assert code == 0, err
    assert "oidc agentur: reachable, 1 signing key(s), end-session offered, back-channel logout supported" in out
    await world.kreis.stop()
    code, out, err = await check("--online")
    assert code == 1 and "oidc kreis: provider_unreachable" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_a_back_channel_logout_closes_the_experts_open_desk(oidc_world) -> None:
    import asyncio

    import aiohttp

    world = await oidc_world()
    b = world.browser()
    await b.sign_in("kreis", "erik", PASSWORDS["erik"])
    ws = await b.http.ws_connect(world.rp_url + "/desk/ws", headers={"Origin": world.rp_url})
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "desk" and hello["status"] == "available"
    claims = {"iss": world.kreis.issuer, "aud": "roomserver", "iat": int(time.time()), "jti": "j2", "sub": "erik",
              "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    r = await world.browser().post("/signin/oidc/kreis/backchannel-logout",
                                   data={"logout_token": world.kreis.sign(claims)})
    assert r.status == 200

    async def closed() -> None:
        while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                aiohttp.WSMsgType.CLOSING):
            pass
    await asyncio.wait_for(closed(), 10)
    assert await signed_in_account(b) is None
