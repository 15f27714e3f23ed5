"""Resume secrets: guessed, stale, leaked, after removal, withdrawal, the grace period and the room's end."""

from __future__ import annotations

import asyncio
import secrets

from tests.attacks.loopback import API, Target, target
from tests.attacks.verdict import Verdict

TOPIC = "resume"


async def resume(t: Target, secret: object) -> tuple[str | None, int | None, dict]:
    sock = await t.socket()
    await sock.send({"type": "resume", "secret": secret})
    reply = await sock.next(5.0) or {}
    if reply.get("type") in ("welcome", "waiting"):
        return None, None, reply
    return reply.get("code"), await sock.closed(5.0), reply


async def run() -> list[Verdict]:
    v: list[Verdict] = []

    def judge(attack: str, got: tuple[str | None, int | None, dict], code: str, close: int) -> None:
        v.append(Verdict(TOPIC, attack, got[:2] == (code, close), f"{got[0] or got[2].get('type')} close {got[1]}"))

    async with target(ROOMSERVER_SIGNALLING_RESUME_GRACE_SECONDS="2") as t:
        room = await t.room()
        counsellor, _ = await t.seated(room, "counsellor")
        citizen, welcome = await t.seated(room, "citizen", "Ayşe")
        first = welcome["resume_secret"]
        judge("a guessed secret for this room", await resume(t, f"rs_{room}.{secrets.token_urlsafe(24)}"),
              "resume_unknown", 4412)
        judge("a secret with no room part", await resume(t, secrets.token_urlsafe(32)), "resume_unknown", 4412)
        other = await t.room()
        judge("this seat's secret re-labelled for another room", await resume(t, f"rs_{other}.{first.split('.', 1)[1]}"),
              "resume_unknown", 4412)
        got = await resume(t, "x" * 500)
        v.append(Verdict(TOPIC, "a 500-character secret", got[0] == "bad_message", f"{got[0]} close {got[1]}"))
        # The seat's owner resumes after a drop: the secret rotates; the old one no longer takes the seat.
        await citizen.close()
        back = await t.socket()
        await back.send({"type": "resume", "secret": first})
        again = await back.expect("welcome", 5.0) or {}
        v.append(Verdict(TOPIC, "the secret rotates on resume", bool(again) and again.get("resume_secret") != first,
                         "new secret in welcome" if again.get("resume_secret") not in (None, first) else f"{again}"))
        judge("a leaked (previous) secret while the seat is online", await resume(t, first), "resume_unknown", 4412)
        await back.close()
        third = await t.socket()
        await third.send({"type": "resume", "secret": again.get("resume_secret")})
        latest = await third.expect("welcome", 5.0) or {}
        await third.close()
        judge("a leaked secret two rotations old", await resume(t, first), "resume_unknown", 4412)
        # Removed by the counsellor: the secret is dead.
        fourth = await t.socket()
        await fourth.send({"type": "resume", "secret": latest.get("resume_secret")})
        seat = await fourth.expect("welcome", 5.0) or {}
        await counsellor.send({"type": "remove", "peer": seat.get("self", {}).get("id", "p_x")})
        await fourth.closed(5.0)
        judge("the secret of a removed participant", await resume(t, seat.get("resume_secret")), "resume_unknown", 4412)
        # Withdrawn invite.
        issued = await t.invite(room, "expert", "Herr Y")
        expert = await t.socket()
        ew = await expert.join(issued["token"])
        await t.http.delete(f"/api/v1/rooms/{room}/invites/{issued['jti']}", headers=API)
        await expert.closed(5.0)
        judge("the secret of a participant whose invite was withdrawn", await resume(t, ew.get("resume_secret")),
              "resume_unknown", 4412)
        # The grace period ran out.
        late, lw = await t.seated(room, "interpreter", "Dolmetscherin")
        await late.close()
        await asyncio.sleep(3.5)
        judge("a secret after the resume grace ran out", await resume(t, lw["resume_secret"]), "resume_unknown", 4412)
        # The room ended.
        last, zw = await t.seated(room, "citizen", "Z")
        await last.close()
        await t.http.post(f"/api/v1/rooms/{room}/end", headers=API)
        judge("a secret of an ended room", await resume(t, zw["resume_secret"]), "room_ended", 4411)
    return v
