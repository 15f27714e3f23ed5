"""A room server with two real OpenID Providers, "Agentur" and "Kreis", on loopback (fixture ``oidc_world``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestServer

from roomserver import bootstrap, config
from roomserver.app import create_app
from roomserver.services import Services, build_services
from tests.conftest import TEST_API_KEY
from tests.oidc.op import CLIENT_ID, CLIENT_SECRET, Browser, OpenIDProvider, ensure_installed, free_port

AGENTUR_USERS = {
    "clara": {"name": "Clara Beraterin", "preferred_username": "clara", "groups": ["beratung", "kantine"]},
    "otto": {"name": "Otto Leitstand", "preferred_username": "otto", "groups": ["it-service"]},
    "ida": {"name": "Ida Admin", "preferred_username": "ida", "groups": ["it-service", "raumserver-admin"]},
    "nemo": {"name": "Nemo Niemand", "preferred_username": "nemo", "groups": ["kantine"]},
}
KREIS_USERS = {
    "erik": {"name": "Erik Ausländerbehörde", "preferred_username": "erik", "groups": ["abh"]},
    "jana": {"name": "Jana Jobcenter", "preferred_username": "jana", "groups": ["jobcenter"]},
    "dora": {"name": "Dora Dolmetscherin", "preferred_username": "dora", "groups": ["sprache-ar", "sprache-tr"],
             "languages": ["dgs"]},
}
PASSWORDS = {login: f"pw-{login}" for login in list(AGENTUR_USERS) + list(KREIS_USERS)}

DEPARTMENTS = [("agentur", "Agentur für Arbeit", "agency"), ("auslaenderbehoerde", "Ausländerbehörde", "county"),
               ("jobcenter", "Jobcenter", "county")]


def provider_toml(op: OpenIDProvider, label: str, roles: dict[str, str], extra: str = "") -> str:
    table = ", ".join(f'"{k}" = "{v}"' for k, v in roles.items())
    return (f'[oidc.{op.name}]\ndisplay_name = "{label}"\nissuer = "{op.issuer}"\nclient_id = "{CLIENT_ID}"\n'
            f'scopes = ["openid", "profile", "groups"]\nroles_claim = "groups"\nroles = {{ {table} }}\n{extra}\n')


AGENTUR_ROLES = {"beratung": "counsellor", "raumserver-admin": "admin", "it-service": "operator"}
KREIS_ROLES = {"abh": "expert:auslaenderbehoerde", "jobcenter": "expert:jobcenter", "sprache-ar": "interpreter:ar",
               "sprache-tr": "interpreter:tr"}


@dataclass
class OidcWorld:
    rp: TestServer
    svc: Services
    agentur: OpenIDProvider
    kreis: OpenIDProvider
    rp_url: str
    config_path: Path
    env: dict[str, str]
    browsers: list[Browser] = field(default_factory=list)

    def browser(self) -> Browser:
        b = Browser(self.rp_url)
        self.browsers.append(b)
        return b

    async def audit(self, action: str) -> list[Any]:
        return [e for e in await self.svc.store.audit.query() if e.action == action]


@pytest.fixture
async def oidc_world(tmp_path: Path, store_url: Callable[[], str]) -> AsyncIterator[Callable[..., Any]]:
    """``await oidc_world(extra_toml="", **env)``: providers started, room server on a fixed loopback port."""
    ensure_installed()
    made: list[OidcWorld] = []
    providers: list[OpenIDProvider] = []

    async def make(*, agentur_extra: str = "", kreis_extra: str = "", toml: str = "", start_kreis: bool = True,
                   **env: str) -> OidcWorld:
        rp_port = free_port()
        rp_url = f"http://127.0.0.1:{rp_port}"
        agentur = OpenIDProvider("agentur", rp_url, AGENTUR_USERS, tmp_path, passwords=PASSWORDS)
        kreis = OpenIDProvider("kreis", rp_url, KREIS_USERS, tmp_path, passwords=PASSWORDS)
        providers.extend([agentur, kreis])
        await agentur.start()
        if start_kreis:
            await kreis.start()
        path = tmp_path / f"roomserver-{len(made)}.toml"
        path.write_text(toml + provider_toml(agentur, "Agentur für Arbeit", AGENTUR_ROLES, agentur_extra)
                        + provider_toml(kreis, "Kreisverwaltung", KREIS_ROLES,
                                        'languages_claim = "languages"\n' + kreis_extra), encoding="utf-8")
        base = {"ROOMSERVER_SERVER_DATA_DIR": str(tmp_path / f"data{len(made)}"),
                "ROOMSERVER_SERVER_PORT": str(rp_port), "ROOMSERVER_SERVER_PUBLIC_URL": rp_url,
                "ROOMSERVER_STORE_SYNCHRONOUS": "normal", "ROOMSERVER_AUTH_API_KEYS": f"tests:{TEST_API_KEY}",
                "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false", "ROOMSERVER_STORE_URL": store_url(),
                "ROOMSERVER_OIDC_AGENTUR_CLIENT_SECRET": CLIENT_SECRET,
                "ROOMSERVER_OIDC_KREIS_CLIENT_SECRET": CLIENT_SECRET}
        base.update(env)
        settings = config.load(path, env=base)
        bootstrap.prepare(settings, 0)
        svc = build_services(settings)
        for dept_id, name, kind in DEPARTMENTS:
            svc.store.blocking.directory.add_department(dept_id, name, kind, svc.now())
        rp = TestServer(create_app(svc), host="127.0.0.1", port=rp_port)
        await rp.start_server()
        world = OidcWorld(rp, svc, agentur, kreis, rp_url, path, base)
        made.append(world)
        return world

    yield make
    for world in made:
        for b in world.browsers:
            await b.close()
        await world.rp.close()
        world.svc.close()
    for op in providers:
        await op.stop()
