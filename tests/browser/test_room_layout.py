"""The room page's geometry in real Chromium: a layout people work in all day, and a phone-first citizen room.

The counsellor signs in and opens the room from the console (so the page has the staff
panels); the other participants are Python aiortc participants sending real video. At
1280x800 and 1920x1080, with 2, 3 and 4 participants and the drawer closed and open, the
test measures the rendered page: the stage takes at least 70 % of the screen (with the
drawer open: 70 % of its width and height, the drawer beside it), with three participants
each remote picture is at least 480 px wide at 1280x800, the control bar is on screen
without scrolling, and no two of header, stage, drawer, control bar and tiles overlap. The
citizen's room is measured at 390x844 like a phone (touch, no screen sharing). Every
state leaves a screenshot in artifacts/screenshots/layout-*.png for a human to look at.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from playwright.async_api import TimeoutError as PlaywrightTimeout

from roomserver import i18n
from roomserver.peer.participant import Participant
from tests.browser.desks import add_departments, counsellor_in_room
from tests.browser.pages import WAIT_MS, base_url, wait_js, wait_state, wait_video
from tests.staff import add_staff
from tests.support import create_room, invite

# Every box the layout promises, in CSS pixels of the viewport.
GEOMETRY = """() => {
  const box = (el) => { if (!el || el.hidden) return null; const r = el.getBoundingClientRect();
    return r.width && r.height ? {x: r.left, y: r.top, w: r.width, h: r.height} : null; };
  const tiles = {};
  for (const li of document.querySelectorAll('#tiles > li')) tiles[li.dataset.peer] = {...box(li), self: li.classList.contains('self')};
  const name = (li) => li.querySelector('.tile-name');
  return {
    vw: innerWidth, vh: innerHeight,
    scrollW: document.documentElement.scrollWidth, scrollH: document.documentElement.scrollHeight,
    header: box(document.querySelector('header.top')), stage: box(document.getElementById('stage')),
    drawer: box(document.getElementById('drawer')), controls: box(document.getElementById('controls')),
    tiles,
    buttons: [...document.querySelectorAll('#controls button')].filter((b) => !b.hidden)
      .map((b) => ({id: b.id, ...box(b)})),
    names: [...document.querySelectorAll('#tiles .tile-name')].map((n) => ({
      text: n.textContent, height: n.getBoundingClientRect().height,
      line: parseFloat(getComputedStyle(n).lineHeight) || 20, wrap: getComputedStyle(n).overflowWrap,
      white: getComputedStyle(n).whiteSpace})),
  };
}"""


def overlap(a: dict[str, float], b: dict[str, float]) -> float:
    """The area two boxes share (0 when they only touch)."""
    w = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return max(0.0, w) * max(0.0, h)


def inside(inner: dict[str, float], outer: dict[str, float], slack: float = 1.0) -> bool:
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + slack
            and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + slack)


def check_frame(g: dict[str, Any], where: str, *, drawer: bool) -> None:
    """What holds in every state: one screen, controls on it, nothing on top of anything else."""
    vw, vh = g["vw"], g["vh"]
    assert g["scrollH"] <= vh + 1 and g["scrollW"] <= vw + 1, (where, "the page scrolls", g["scrollW"], g["scrollH"])
    c = g["controls"]
    assert c and c["y"] >= 0 and c["y"] + c["h"] <= vh + 0.5, (where, "control bar off screen", c)
    for button in g["buttons"]:
        assert button["y"] + button["h"] <= vh + 0.5 and button["x"] + button["w"] <= vw + 0.5, (where, button)
        assert button["h"] >= 44 and button["w"] >= 44, (where, "a control smaller than a finger", button)
    regions = {"header": g["header"], "stage": g["stage"], "controls": c}
    if drawer:
        assert g["drawer"], (where, "drawer not shown")
        regions["drawer"] = g["drawer"]
    else:
        assert g["drawer"] is None, (where, "drawer shown")
    names = sorted(regions)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert overlap(regions[a], regions[b]) < 1, (where, f"{a} overlaps {b}", regions[a], regions[b])
    tiles = list(g["tiles"].items())
    for i, (ida, a) in enumerate(tiles):
        assert inside(a, g["stage"]), (where, f"tile {ida} leaves the stage", a, g["stage"])
        for idb, b in tiles[i + 1:]:
            assert overlap(a, b) < 1, (where, f"tiles {ida} and {idb} overlap", a, b)
    for name in g["names"]:  # one line, never broken inside a word
        assert name["white"] == "nowrap" and name["wrap"] != "anywhere", (where, name)
        assert name["height"] <= name["line"] * 1.5, (where, "a name on two lines", name)


async def settle(page) -> dict[str, Any]:
    """The geometry once every tile has its box and two readings agree."""
    last = None
    for _ in range(40):
        await page.wait_for_timeout(150)
        g = await page.evaluate(GEOMETRY)
        placed = await page.evaluate("() => [...document.querySelectorAll('#tiles > li')].every((li) => li.dataset.placed)")
        if placed and g == last:
            return g
        last = g
    raise AssertionError(f"the layout never settled: {last}")


def figures(where: str, g: dict[str, Any]) -> str:
    """One line for artifacts/screenshots/layout-figures.txt: how much of the screen each part takes."""
    st, vw, vh = g["stage"], g["vw"], g["vh"]
    remote = sorted(f"{t['w']:.0f}x{t['h']:.0f}" for t in g["tiles"].values() if not t["self"])
    own = [f"{t['w']:.0f}x{t['h']:.0f}" for t in g["tiles"].values() if t["self"]]
    return (f"{where}: stage {st['w']:.0f}x{st['h']:.0f} = {100 * st['w'] * st['h'] / (vw * vh):.0f} % of the screen "
            f"({100 * st['w'] / vw:.0f} % of its width, {100 * st['h'] / vh:.0f} % of its height); remote {', '.join(remote)}; "
            f"own {', '.join(own)}; controls {g['controls']['h']:.0f} px high")


def note(artifacts, lines: list[str], name: str) -> None:
    path = artifacts / "screenshots" / f"layout-figures-{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def shot(page, artifacts, name: str) -> None:
    path = artifacts / "screenshots" / f"layout-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path))


async def past_offer(page) -> None:
    """Dismiss the audio-only offer if it shows: on a loaded machine the video really is poor, and
    the offer lies over the stage (its own test is test_poor_connection.py), over the buttons here."""
    dismiss = page.locator("#quality-offer .quality-dismiss")
    if await dismiss.count():
        await dismiss.first.click()


async def click(page, locator) -> None:
    """Click ``locator``; an audio-only offer that appears over it is dismissed first (see past_offer)."""
    for _ in range(3):
        await past_offer(page)
        try:
            await locator.click(timeout=5000)
            return
        except PlaywrightTimeout:
            continue
    await past_offer(page)
    await locator.click()


async def counsellor_room(server, services, new_page):
    add_departments(services)
    staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    page, room_id = await counsellor_in_room(server, new_page, staff, "Beratung Aufenthalt", label="layout-counsellor",
                                             viewport={"width": 1280, "height": 800})
    await page.emulate_media(reduced_motion="reduce")  # no transitions: measure the final boxes
    return page, room_id


async def test_counsellor_room_fills_the_screen_with_2_3_4_participants(server, http, api_headers, services,
                                                                        new_page, artifacts):
    page, room = await counsellor_room(server, services, new_page)
    ws = str(server.make_url("/ws")).replace("http://", "ws://")
    people = [("citizen", "Ayşe Yılmaz"), ("interpreter", "Dana Dolmetscherin"),
              ("expert", "Expertin Ausländerbehörde (Demo)")]
    lines: list[str] = []
    async with AsyncExitStack() as stack:
        joined: list[Participant] = []
        for count, (role, name) in enumerate(people, start=2):
            p = Participant(ws, (await invite(http, api_headers, room, role, name))["token"], fps=8)
            stack.push_async_callback(p.close)
            await p.connect()
            joined.append(p)
            for q in joined:
                await wait_video(page, q.id)
            for width, height in ((1280, 800), (1920, 1080)):
                await page.set_viewport_size({"width": width, "height": height})
                for drawer in (False, True):
                    if drawer != (await page.get_attribute("#ctl-people", "aria-expanded") == "true"):
                        await page.click("#ctl-people")
                    where = f"{width}x{height}-{count}-{'drawer' if drawer else 'closed'}"
                    g = await settle(page)
                    await shot(page, artifacts, where)
                    lines.append(figures(where, g))
                    check_frame(g, where, drawer=drawer)
                    stage, vw, vh = g["stage"], g["vw"], g["vh"]
                    if drawer:
                        assert stage["w"] >= 0.7 * vw and stage["h"] >= 0.7 * vh, (where, stage)
                    else:
                        assert stage["w"] * stage["h"] >= 0.7 * vw * vh, (where, stage)
                    remote = {pid: t for pid, t in g["tiles"].items() if not t["self"]}
                    own = [t for t in g["tiles"].values() if t["self"]]
                    assert len(remote) == count - 1 and len(own) == 1, (where, g["tiles"])
                    # the own picture is small; every remote picture is larger than it
                    assert own[0]["w"] * own[0]["h"] <= 0.06 * vw * vh, (where, own)
                    assert all(t["w"] > own[0]["w"] for t in remote.values()), (where, g["tiles"])
                    if (width, count) == (1280, 3):
                        assert all(t["w"] >= 480 for t in remote.values()), (where, remote)
            if drawer:  # back to closed for the next newcomer
                await page.click("#ctl-people")
    note(artifacts, lines, "counsellor")


async def test_pinned_interpreter_beside_the_citizen_and_a_moved_self_view(server, http, api_headers, services,
                                                                          new_page, artifacts):
    """Two pinned pictures large side by side, the third in a strip; the own picture goes round the corners."""
    page, room = await counsellor_room(server, services, new_page)
    ws = str(server.make_url("/ws")).replace("http://", "ws://")
    async with AsyncExitStack() as stack:
        ids = {}
        for role, name in (("citizen", "Ayşe"), ("interpreter", "Dana DGS"), ("expert", "Herr Kaya")):
            p = Participant(ws, (await invite(http, api_headers, room, role, name))["token"], fps=8)
            stack.push_async_callback(p.close)
            await p.connect()
            ids[name] = p.id
        for pid in ids.values():
            await wait_video(page, pid)
        await click(page, page.get_by_role("button", name="Anheften und vergrößern: Ayşe"))
        await click(page, page.get_by_role("button", name="Anheften und vergrößern: Dana DGS"))
        g = await settle(page)
        await shot(page, artifacts, "1280x800-4-pinned")
        check_frame(g, "pinned", drawer=False)
        citizen, interpreter, expert = (g["tiles"][ids[n]] for n in ("Ayşe", "Dana DGS", "Herr Kaya"))
        assert abs(citizen["y"] - interpreter["y"]) < 2 and citizen["w"] == interpreter["w"]  # side by side
        assert citizen["w"] >= 2 * expert["w"] and expert["y"] > citizen["y"] + citizen["h"]  # the rest below, small
        assert await page.get_attribute("#stage", "data-layout") == "focus"

        corners = []
        for _ in range(4):
            await click(page, page.get_by_role("button", name="Eigenes Bild in die nächste Ecke verschieben"))
            g = await settle(page)
            check_frame(g, "moved", drawer=False)
            own = next(t for t in g["tiles"].values() if t["self"])
            stage = g["stage"]
            corners.append(("top" if own["y"] < stage["y"] + stage["h"] / 2 else "bottom",
                            "left" if own["x"] < stage["x"] + stage["w"] / 2 else "right"))
        assert sorted(corners) == sorted([("bottom", "left"), ("top", "left"), ("top", "right"), ("bottom", "right")])
        # Dragged with the pointer, it snaps to the nearest corner.
        await past_offer(page)
        own = next(t for t in g["tiles"].values() if t["self"])
        start = (own["x"] + own["w"] / 2, own["y"] + own["h"] / 2)
        await page.mouse.move(*start)
        await page.mouse.down()
        await page.mouse.move(g["stage"]["x"] + 40, g["stage"]["y"] + 40, steps=8)
        await page.mouse.up()
        g = await settle(page)
        own = next(t for t in g["tiles"].values() if t["self"])
        assert own["x"] < g["stage"]["x"] + 20 and own["y"] < g["stage"]["y"] + 20, own
        check_frame(g, "dragged", drawer=False)
        await shot(page, artifacts, "1280x800-4-self-top-left")


async def test_citizen_room_on_a_phone(server, http, api_headers, services, new_page, artifacts):
    """390x844, touch: the counsellor large, the own picture small in a corner, controls in thumb reach."""
    room = await create_room(http, api_headers)
    ws = str(server.make_url("/ws")).replace("http://", "ws://")
    async with AsyncExitStack() as stack:
        counsellor = Participant(ws, (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"], fps=8)
        stack.push_async_callback(counsellor.close)
        await counsellor.connect()
        token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
        page = await new_page("layout-phone", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                              device_scale_factor=2)
        await page.emulate_media(reduced_motion="reduce")
        await page.goto(f"{base_url(server)}/room/{room}#{token}")
        await wait_state(page, "in-call")
        await wait_video(page, counsellor.id)
        g = await settle(page)
        await shot(page, artifacts, "phone-390x844")
        lines = [figures("phone-390x844", g)]
        check_frame(g, "phone", drawer=False)
        vw, vh = g["vw"], g["vh"]
        assert g["stage"]["w"] * g["stage"]["h"] >= 0.7 * vw * vh, g["stage"]
        remote = g["tiles"][counsellor.id]
        own = next(t for t in g["tiles"].values() if t["self"])
        assert remote["w"] >= 0.9 * g["stage"]["w"] - 20 and remote["h"] >= 0.5 * g["stage"]["h"], remote  # large
        assert own["w"] * own["h"] <= 0.08 * vw * vh, own  # small …
        assert own["x"] + own["w"] >= g["stage"]["x"] + g["stage"]["w"] - 12  # … in a corner
        assert own["y"] + own["h"] >= g["stage"]["y"] + g["stage"]["h"] - 12
        # Every control in thumb reach at the bottom; nothing a phone cannot do (no screen sharing).
        assert all(b["y"] >= 0.8 * vh for b in g["buttons"]), g["buttons"]
        ids = [b["id"] for b in g["buttons"]]
        assert "ctl-screen" not in ids and "ctl-leave" in ids and "ctl-chat" in ids, ids
        assert await page.locator("#ctl-screen").is_hidden()
        # The recording notice is one short line, said once.
        assert g["header"]["h"] <= 60, g["header"]
        short = i18n.catalog("de")["room.recording.title"]  # "Keine Aufnahme."
        assert await page.get_by_text(short, exact=True).count() == 1

        # The chat opens as a sheet between picture and controls; the picture stays in view.
        await page.tap("#ctl-chat")
        await page.wait_for_function("() => document.activeElement?.id === 'chat-input'", timeout=WAIT_MS)
        g = await settle(page)
        await shot(page, artifacts, "phone-390x844-chat")
        lines.append(figures("phone-390x844-chat", g))
        note(artifacts, lines, "phone")
        check_frame(g, "phone-chat", drawer=True)
        assert g["tiles"][counsellor.id]["h"] >= 150, g["tiles"]
        await wait_js(page, "() => window.roomserverDebug.state === 'in-call'", what="still in the call")
