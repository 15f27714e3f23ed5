"""Chromium starts, renders a page of ours under its CSP, and has fake media devices."""


async def test_index_renders_under_csp(server, new_page):
    page = await new_page("index")
    response = await page.goto(str(server.make_url("/")))
    assert response.status == 200
    assert "Vernetzte Beratung" in await page.title()
    devices = await page.evaluate("""async () => {
        const s = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
        const kinds = s.getTracks().map(t => t.kind).sort();
        s.getTracks().forEach(t => t.stop());
        return kinds;
    }""")
    assert devices == ["audio", "video"]
    assert not [m for m in page.console_log if "Content Security Policy" in m]
