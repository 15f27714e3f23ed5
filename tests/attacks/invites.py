"""Invites: a withdrawn invite keeps nobody in the room; nobody withdraws or reads another's invites."""

from __future__ import annotations

from tests.attacks.loopback import API, target
from tests.attacks.verdict import Verdict

TOPIC = "invites"
PASSWORD = "richtig-Pferd-Batterie-42"


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    async with target() as t:
        room = await t.room()
        counsellor, _ = await t.seated(room, "counsellor")
        issued = await t.invite(room, "citizen", "Ayşe")
        citizen = await t.socket()
        welcome = await citizen.join(issued["token"])
        r = await t.http.delete(f"/api/v1/rooms/{room}/invites/{issued['jti']}", headers=API)
        removed = await citizen.expect("removed", 5.0)
        closed = await citizen.closed(5.0)
        v.append(Verdict(TOPIC, "stay seated after the invite was withdrawn",
                         r.status == 204 and removed is not None and closed == 4410,
                         f"DELETE {r.status}, seat got {'removed' if removed else 'nothing'}, close {closed}"))
        again = await t.socket()
        back = await again.join(issued["token"])
        v.append(Verdict(TOPIC, "join again with the withdrawn invite", back.get("code") == "token_revoked",
                         f"{back.get('code', back.get('type'))}"))
        code = (issued.get("short_url") or "").rsplit("/", 1)[-1]
        async with t.http.post("/j/resolve", json={"code": code}) as resp:
            body = await resp.json(content_type=None)
            v.append(Verdict(TOPIC, "open the withdrawn invite's short link", resp.status in (401, 404),
                             f"{resp.status} {body.get('error', {}).get('code')}"))
        # Another room's path, another counsellor.
        other = await t.room()
        theirs = await t.invite(other, "citizen", "B")
        async with t.http.delete(f"/api/v1/rooms/{room}/invites/{theirs['jti']}", headers=API) as resp:
            v.append(Verdict(TOPIC, "withdraw another room's invite through this room's path", resp.status == 404,
                             f"{resp.status}"))
        t.staff("carl", "counsellor", PASSWORD)
        async with t.client() as carl:
            csrf = (await (await carl.post("/api/v1/session", json={"username": "carl", "password": PASSWORD}))
                    .json())["csrf_token"]
            h = {"X-CSRF-Token": csrf}
            async with carl.delete(f"/api/v1/rooms/{other}/invites/{theirs['jti']}", headers=h) as resp:
                v.append(Verdict(TOPIC, "a counsellor withdraws an invite of a room not hers", resp.status == 403,
                                 f"{resp.status}"))
            async with carl.get(f"/api/v1/rooms/{other}/invites", headers=h) as resp:
                v.append(Verdict(TOPIC, "a counsellor lists the invites of a room not hers", resp.status == 403,
                                 f"{resp.status}"))
            async with carl.post(f"/api/v1/rooms/{other}/invites", headers=h,
                                 json={"role": "counsellor", "name": "Ich"}) as resp:
                v.append(Verdict(TOPIC, "a counsellor invites herself into a room not hers", resp.status == 403,
                                 f"{resp.status}"))
        await t.http.post(f"/api/v1/rooms/{other}/end", headers=API)
        async with t.http.post(f"/api/v1/rooms/{other}/invites", json={"role": "citizen", "name": "X"},
                               headers=API) as resp:
            body = await resp.json(content_type=None)
            v.append(Verdict(TOPIC, "a new invite for an ended room", resp.status == 409,
                             f"{resp.status} {body.get('error', {}).get('code')}"))
        del welcome
    return v
