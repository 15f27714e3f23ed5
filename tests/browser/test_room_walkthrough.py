"""What a walkthrough of the whole scenario found, each as a test in real Chromium that failed before the fix.

The counsellor signs in and works from the console and the room page; experts have their
desk pages open; citizens come by link; the other participants are Python aiortc
participants where a browser would add nothing. Every wait is bounded; nothing asserts on
timing. Screenshots go to artifacts/screenshots (the ``new_page`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack

import aiohttp

from roomserver.peer.participant import Participant
from tests.browser.desks import (
    DEPT,
    add_departments,
    add_expert,
    counsellor_in_room,
    open_desk,
)
from tests.browser.pages import (
    WAIT_MS,
    base_url,
    open_pane,
    plain,
    self_id,
    wait_js,
    wait_state,
    wait_video,
)
from tests.staff import add_staff
from tests.support import create_room, invite, sql


def ws_url(server) -> str:
    return str(server.make_url("/ws")).replace("http://", "ws://")


async def counsellor_of_the_agency(server, services, new_page, title: str = "Beratung Aufenthalt"):
    """Clara, a counsellor of the employment agency (whose own office is in the directory too)."""
    add_departments(services)
    staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    sql(services, "UPDATE accounts SET department_id = 'agentur' WHERE id = ?", staff.id)
    return await counsellor_in_room(server, new_page, staff, title)


# ----------------------------------------------------------------------- the expert's way back


async def test_an_expert_who_left_by_mistake_goes_back_from_the_desk(server, http, api_headers, services, new_page,
                                                                     artifacts):
    """Before: "Wieder beitreten" on the room page always failed with token_already_used (a spent single-use token)."""
    add_departments(services)
    erika = add_expert(services, "erika", "Erika Expertin")
    room = await create_room(http, api_headers, title="Beratung Aufenthalt")
    async with AsyncExitStack() as stack:
        counsellor = Participant(ws_url(server), (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"],
                                 send_media=False)
        stack.push_async_callback(counsellor.close)
        await counsellor.connect()
        desk = await open_desk(server, new_page, erika, "desk")
        await counsellor.send({"type": "call", "department": DEPT})
        await desk.wait_for_selector(".desk-call", timeout=WAIT_MS)
        await desk.locator(".desk-accept").click()
        await desk.wait_for_url(re.compile(rf"/room/{room}$"), timeout=WAIT_MS)
        await wait_state(desk, "in-call")
        first_seat = await self_id(desk)

        await desk.click("#ctl-leave")
        await wait_state(desk, "left")
        await desk.screenshot(path=str(artifacts / "screenshots" / "room-expert-left.png"))
        # The end screen speaks to an expert, offers no reload of the spent link, and leads to the desk.
        await desk.get_by_role("heading", name="Sie haben die Beratung verlassen.").wait_for(timeout=WAIT_MS)
        assert "Zurück in die Beratung" in await desk.inner_text("#end-text")
        assert await desk.get_by_role("button", name="Wieder beitreten").count() == 0
        assert "Beraterin oder Ihren Berater" not in await desk.inner_text("#screen-end")
        back = desk.get_by_role("link", name="Zurück zum Arbeitsplatz")
        await back.click()
        await desk.wait_for_url(re.compile(r"/desk$"), timeout=WAIT_MS)
        await wait_js(desk, "() => document.body.dataset.connection === 'connected'", what="desk connected")
        # The desk offers the way back and has put the focus on it.
        rejoin = desk.get_by_role("button", name="Zurück in die Beratung „Beratung Aufenthalt“")
        await rejoin.wait_for(timeout=WAIT_MS)
        assert await rejoin.evaluate("(b) => b === document.activeElement")
        await desk.screenshot(path=str(artifacts / "screenshots" / "desk-returns.png"))
        await desk.keyboard.press("Enter")
        await desk.wait_for_url(re.compile(rf"/room/{room}$"), timeout=WAIT_MS)
        await wait_state(desk, "in-call")
        assert await self_id(desk) != first_seat  # a new seat, on a fresh single-use token
        await counsellor.wait_until(lambda: any(p.get("name") == "Erika Expertin" for p in counsellor.peers.values()),
                                    WAIT_MS / 1000, "the expert back in the room")

        # Released by the counsellor: thanked, and the desk no longer offers a way back.
        expert_seat = await self_id(desk)
        await counsellor.remove(expert_seat)
        await wait_state(desk, "removed")
        await desk.get_by_role("heading", name="Sie wurden aus der Beratung verabschiedet.").wait_for(timeout=WAIT_MS)
        assert "Arbeitsplatz ist wieder verfügbar" in await desk.inner_text("#end-text")
        await desk.get_by_role("link", name="Zurück zum Arbeitsplatz").click()
        await desk.wait_for_url(re.compile(r"/desk$"), timeout=WAIT_MS)
        await wait_js(desk, "() => document.body.dataset.connection === 'connected'", what="desk connected")
        assert await desk.locator("#returns-section").is_hidden()
        assert await desk.get_attribute("body", "data-status") == "available"


# ----------------------------------------------------------------------- end screens by role


async def test_end_screens_speak_to_each_role(server, http, api_headers, services, new_page):
    """Before: the counsellor was told to close the window, with no way back to the console."""
    page, room = await counsellor_of_the_agency(server, services, new_page)
    citizen = await new_page("citizen")
    token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
    await citizen.goto(f"{base_url(server)}/room/{room}#{token}")
    await wait_state(citizen, "in-call")

    # The counsellor leaves and comes back on a fresh token minted by the console.
    await page.click("#ctl-leave")
    await wait_state(page, "left")
    await page.get_by_role("heading", name="Sie haben den Raum verlassen.").wait_for(timeout=WAIT_MS)
    assert await page.get_by_role("link", name="Zurück zur Übersicht").get_attribute("href") == "/console"
    await page.get_by_role("button", name="Wieder beitreten").click()
    await wait_state(page, "in-call")

    await page.click("#ctl-end")
    await page.click("#confirm-ok")
    await wait_state(page, "ended")
    assert "Links zu dieser Beratung gelten nicht mehr" in await page.inner_text("#end-text")
    assert "Fenster jetzt schließen" not in await page.inner_text("#end-text")
    await page.get_by_role("link", name="Zurück zur Übersicht").click()
    await page.wait_for_url(re.compile(r"/console$"), timeout=WAIT_MS)

    # The citizen is thanked.
    await wait_state(citizen, "ended")
    assert "Vielen Dank" in await citizen.inner_text("#end-text")
    assert await citizen.locator("#end-actions a, #end-actions button").count() == 0


# ----------------------------------------------------------------------- chat direction


async def test_chat_keeps_each_message_in_its_own_direction(server, http, api_headers, new_page):
    """Before: an Arabic page showed a German question as "…Pass ?dabei"."""
    room = await create_room(http, api_headers)
    c_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    z_token = (await invite(http, api_headers, room, "citizen", "مريم"))["token"]
    counsellor = await new_page("counsellor")
    await counsellor.goto(f"{base_url(server)}/room/{room}#{c_token}")
    citizen = await new_page("citizen-ar", locale="ar-SY")
    await citizen.goto(f"{base_url(server)}/room/{room}?lang=ar#{z_token}")
    for page in (counsellor, citizen):
        await wait_state(page, "in-call")
        await wait_js(page, "() => window.roomserverDebug.chatOpen() === 1", what="chat channel")
        await open_pane(page, "chat")
    assert await citizen.get_attribute("html", "dir") == "rtl"

    question = "Haben Sie Ihren Pass dabei?"
    await counsellor.fill("#chat-input", question)
    await counsellor.press("#chat-input", "Enter")
    answer = "نعم، معي جواز السفر."
    await citizen.fill("#chat-input", answer)
    await citizen.press("#chat-input", "Enter")

    geometry = """(text) => {
        const node = [...document.querySelectorAll('#chat-log .chat-text')].find((n) => n.textContent === text);
        if (!node) return null;
        const range = document.createRange();
        const rect = (i) => { range.setStart(node.firstChild, i); range.setEnd(node.firstChild, i + 1);
                              return range.getBoundingClientRect(); };
        return {direction: getComputedStyle(node).direction, first: rect(0).left, last: rect(text.length - 1).left,
                from: node.parentElement.querySelector('.chat-from').tagName};
    }"""
    on_citizen = await wait_js(citizen, geometry, question, "the German question on the Arabic page")
    assert on_citizen["direction"] == "ltr", on_citizen
    assert on_citizen["last"] > on_citizen["first"], on_citizen  # the question mark at the end, on the right
    assert on_citizen["from"] == "BDI"
    on_counsellor = await wait_js(counsellor, geometry, answer, "the Arabic answer on the German page")
    assert on_counsellor["direction"] == "rtl", on_counsellor
    assert on_counsellor["last"] < on_counsellor["first"], on_counsellor  # read from the right
    # A name in a sentence of the log is isolated too: it cannot pull the words around it along.
    log = await counsellor.inner_text("#chat-log")
    assert "\u2068مريم\u2069" in log or "مريم" in plain(log)
    assert await counsellor.evaluate("() => [...document.querySelectorAll('#chat-log .notice span')]"
                                     ".every((s) => s.getAttribute('dir') === 'auto')")


# ----------------------------------------------------------------------- the reconnect hang


class HalfOpenNetwork:
    """A loopback TCP proxy in front of the server that can lose new connections.

    While ``outage`` is on, a new connection is accepted and then hears nothing, ever: what a
    socket opened during a network outage can look like (half-open) after the network is back.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.outage = False
        self.stuck = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            if self.outage:
                self.stuck += 1
                while await reader.read(65536):
                    pass  # swallowed: no answer comes back
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.writers.add(up_writer)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for writer in list(self.writers):
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_socket_lost_during_an_outage_does_not_leave_the_citizen_hanging(server, http, api_headers, new_page):
    """Before: no timeout for the server's answer after a reconnect, so the page hung in "reconnecting"."""
    network = HalfOpenNetwork(server.port)
    port = await network.start()
    try:
        room = await create_room(http, api_headers)
        c_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
        z_token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
        counsellor = await new_page("counsellor")
        await counsellor.goto(f"{base_url(server)}/room/{room}#{c_token}")
        citizen = await new_page("citizen-behind-a-flaky-network")
        await citizen.goto(f"http://127.0.0.1:{port}/room/{room}#{z_token}")
        await wait_state(citizen, "in-call")
        seat = await self_id(citizen)
        before = await wait_video(counsellor, seat)

        network.outage = True
        await citizen.evaluate("() => window.roomserverDebug.drop()")
        await wait_state(citizen, "reconnecting")
        await wait_js(citizen, "() => window.roomserverDebug.sockets >= 2", what="a reconnect attempt")
        deadline = asyncio.get_running_loop().time() + 10
        while network.stuck == 0:  # the attempt went into the outage
            assert asyncio.get_running_loop().time() < deadline, "no attempt during the outage"
            await asyncio.sleep(0.1)
        network.outage = False  # the network is back; the half-open socket stays silent

        await wait_state(citizen, "in-call")  # given up in time, and resumed on the same seat
        assert await self_id(citizen) == seat
        await wait_video(counsellor, seat, generation=before["generation"] + 1)
    finally:
        await network.close()


# ----------------------------------------------------------------------- the operator's event list


async def test_operator_event_list_reads_in_order(server, http, api_headers, services, new_page):
    """Before: an <ol> that cut numbers over 9 ("l0.") and lines like "beigetreten Fachkraft p_…"."""
    from tests.browser.desks import sign_in

    operator = add_staff(services, "otto", "operator", display_name="Otto Betrieb")
    page = await new_page("operator")
    await sign_in(server, page, operator, "/operator")
    await page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    room = await create_room(http, api_headers, title="Beratung Aufenthalt")
    async with AsyncExitStack() as stack:
        for i in range(5):  # joined and left: ten events, and the room's start
            p = Participant(ws_url(server), (await invite(http, api_headers, room, "expert", f"Fachkraft {i}"))["token"],
                            send_media=False)
            stack.push_async_callback(p.close)
            await p.connect()
            await p.leave()
        await wait_js(page, "() => document.querySelectorAll('#events li').length >= 10", what="ten events")
    facts = await page.evaluate("""() => {
        const list = document.getElementById('events');
        return {tag: list.tagName, marker: getComputedStyle(list).listStyleType,
                lines: [...list.querySelectorAll('li')].map((li) => li.textContent)};
    }""")
    assert facts["tag"] != "OL" and facts["marker"] == "none", facts  # no numbers to cut or misread
    joined = [line for line in facts["lines"] if "beigetreten" in line]
    assert len(joined) == 5, facts["lines"]
    for line in joined:  # time, who, what, where: a sentence
        assert re.fullmatch(r"\d\d:\d\d:\d\d ?Fachkraft p_[\w-]+ ist beigetreten – Beratung Aufenthalt", line), line


# ----------------------------------------------------------------------- the call panel


async def test_call_panel_offers_other_offices_and_its_boxes_follow_the_call(server, http, api_headers, services,
                                                                            new_page):
    """Before: "Agentur für Arbeit (0 verfügbar)" preselected; "1 Person(en)"; the office named twice; stale boxes."""
    page, room = await counsellor_of_the_agency(server, services, new_page)
    erika = add_expert(services, "erika", "Expertin Ausländerbehörde (Demo)")
    async with AsyncExitStack() as stack:
        http_desk = await stack.enter_async_context(aiohttp.ClientSession(base_url=base_url(server),
                                                                          cookie_jar=aiohttp.CookieJar(unsafe=True)))
        from tests.staff import sign_in as form_sign_in

        await form_sign_in(http_desk, erika)
        desk = await http_desk.ws_connect("/desk/ws", headers={"Origin": base_url(server)})
        stack.push_async_callback(desk.close)

        inbox: asyncio.Queue = asyncio.Queue()

        async def read() -> None:  # always reading: the socket answers the server's pings meanwhile
            async for msg in desk:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    inbox.put_nowait(json.loads(msg.data))

        reader = asyncio.ensure_future(read())
        stack.callback(reader.cancel)

        async def desk_message(kind: str) -> dict:
            while True:
                msg = await asyncio.wait_for(inbox.get(), WAIT_MS / 1000)
                if msg["type"] == kind:
                    return msg

        await desk_message("desk")
        await open_pane(page, "expert")
        select = page.locator("#call-panel select")
        await page.wait_for_function(f"""() => [...document.querySelectorAll('#call-panel option')]
            .some((o) => o.value === 'department:{DEPT}' && o.textContent.includes('(1 verfügbar)'))""", timeout=WAIT_MS)
        assert await select.input_value() == ""  # nothing chosen beforehand
        values = await page.eval_on_selector_all("#call-panel option", "(os) => os.map((o) => o.value)")
        assert "department:agentur" not in values, values  # not her own office
        # The drawer put the focus on the choice.
        assert await select.evaluate("(s) => s === document.activeElement")
        await page.click("#call-panel .call-start")  # nothing chosen: told, nothing sent
        await page.locator(".call-status", has_text="Bitte wählen Sie zuerst").wait_for(timeout=WAIT_MS)

        await select.select_option(f"department:{DEPT}")
        await page.click("#call-panel .call-start")
        box = page.locator(".call-status[data-call]")
        await box.filter(has_text="Ausländerbehörde: Es klingelt an einem Arbeitsplatz.").wait_for(timeout=WAIT_MS)
        call_id = (await desk_message("ring"))["call"]["id"]
        await desk.send_json({"type": "accept", "call": call_id})
        token = (await desk_message("accepted"))["url"].split("#", 1)[1]
        await box.filter(has_text="Expertin Ausländerbehörde (Demo) hat angenommen und kommt gleich").wait_for(
            timeout=WAIT_MS)
        assert "(Ausländerbehörde)" not in await box.first.inner_text()

        expert = Participant(ws_url(server), token, send_media=False)
        stack.push_async_callback(expert.close)
        await expert.connect()
        await box.filter(has_text="ist jetzt in der Beratung").wait_for(timeout=WAIT_MS)
        await page.wait_for_function("() => !document.querySelector('.call-status[data-call]')", timeout=WAIT_MS)

        await expert.leave()
        await box.filter(has_text="hat die Beratung verlassen und kann vom Arbeitsplatz").wait_for(timeout=WAIT_MS)
        returns = await desk_message("returns")
        while not returns["calls"]:
            returns = await desk_message("returns")
        await desk.send_json({"type": "rejoin", "call": call_id})
        again = Participant(ws_url(server), (await desk_message("accepted"))["url"].split("#", 1)[1], send_media=False)
        stack.push_async_callback(again.close)
        await again.connect()
        await page.wait_for_function("() => !document.querySelector('.call-status[data-call]')", timeout=WAIT_MS)
        assert await page.locator(".call-status").count() <= 1  # never a pile


# ----------------------------------------------------------------------- a citizen turned away


async def test_a_citizen_turned_away_can_not_knock_again(server, http, api_headers, services, new_page):
    """Before: her invite stayed under "Offene Einladungen" and her link still opened the way to the door."""
    add_departments(services)
    staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    page, room = await counsellor_in_room(server, new_page, staff, "Beratung Aufenthalt", waiting_room=True)
    await open_pane(page, "invite")
    await page.get_by_label("Name der eingeladenen Person").fill("Ayşe Yılmaz")
    await page.get_by_role("button", name="Link erstellen").click()
    await page.wait_for_function("() => /\\/j\\/[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/.test("
                                 "document.querySelector('.invite-link').value)", timeout=WAIT_MS)
    short = await page.locator(".invite-link").input_value()
    listed = page.locator(".invite-list li", has_text="Ayşe Yılmaz")
    await listed.wait_for(timeout=WAIT_MS)
    qr = await page.get_attribute(".invite-qr", "src")
    side = int(re.search(r"viewBox%3D%220%200%20(\d+)%20", qr).group(1))
    assert side - 8 <= 29, side  # a sparse code: at most 29 x 29 modules (and the quiet zone)

    code = short.rsplit("/", 1)[1]
    resolved = await (await http.post("/j/resolve", json={"code": code})).json()
    guest = Participant(ws_url(server), resolved["token"], send_media=False)
    try:
        reply = await guest.connect()
        assert reply["type"] == "waiting"
        await open_pane(page, "people")
        await page.get_by_role("button", name="Abweisen: Ayşe Yılmaz").click()
        await listed.wait_for(state="detached", timeout=WAIT_MS)  # gone from the open invites, without a reload
    finally:
        await guest.close()
    # Her link now says so, and the room refuses her.
    citizen = await new_page("citizen")
    await citizen.goto(short)
    await citizen.get_by_role("heading", name="Der Link wurde zurückgezogen").wait_for(timeout=WAIT_MS)
    again = Participant(ws_url(server), resolved["token"], send_media=False)
    try:
        await again.connect()
        raise AssertionError("a turned-away citizen was let in again")
    except Exception as exc:  # noqa: BLE001 - JoinRefused carries the code
        assert getattr(exc, "code", None) == "token_revoked", exc
    finally:
        await again.close()


# ----------------------------------------------------------------------- a shared screen


async def test_a_shared_screen_takes_the_stage(server, http, api_headers, services, new_page, artifacts):
    """The seed: experts are switched in "per Video und Bildschirm" and show a form."""
    page, room = await counsellor_of_the_agency(server, services, new_page)
    expert = await new_page("expert")
    await expert.goto(f"{base_url(server)}/room/{room}#{(await invite(http, api_headers, room, 'expert', 'Herr Kaya'))['token']}")
    await wait_state(expert, "in-call")
    async with AsyncExitStack() as stack:
        citizen = Participant(ws_url(server), (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"], fps=8)
        stack.push_async_callback(citizen.close)
        await citizen.connect()
        e_id = await self_id(expert)
        await wait_video(page, e_id)
        assert await page.get_attribute("#stage", "data-layout") == "gallery"
        await expert.click("#ctl-screen")
        await wait_js(page, "(id) => document.querySelector(`#tiles li[data-peer='${id}']`)?.classList.contains('focus')",
                      e_id, "the shared screen large")
        assert await page.get_attribute("#stage", "data-layout") == "focus"
        boxes = await page.evaluate("() => window.roomserverDebug.layout()")
        assert boxes[e_id]["w"] > 2 * boxes[citizen.id]["w"], boxes
        await wait_js(page, "() => document.getElementById('announcer').textContent.includes('teilt den Bildschirm')",
                      what="the screen share read out")
        await page.screenshot(path=str(artifacts / "screenshots" / "layout-shared-screen.png"))
        await expert.click("#ctl-screen")
        await wait_js(page, "() => document.getElementById('stage').dataset.layout === 'gallery'", what="gallery again")
