"""Headless Debian Firefox ESR driven over Marionette, behind the small part of Playwright's Page the tests use.

No geckodriver and no Playwright Firefox build (both are downloads): ``marionette-driver``
starts ``/usr/bin/firefox-esr`` itself with a fresh profile in a scratch ``workspace`` and
talks to it on a loopback port. One Firefox per participant, so every page has its own
storage, like a Playwright context.

The Marionette client is blocking; every call runs in a worker thread so the test's event
loop (which also runs the server under test) never stalls. Scripts run with
``sandbox=None``: in the page's own global, so they see its modules' ``window`` objects.

Headless Firefox has no screen, so ``getDisplayMedia`` finds nothing to share; a page that
needs screen sharing (``screen=True``) runs Firefox with a window on a virtual X display
(``Xvfb``, Debian package ``xvfb``) instead, where it shares that display.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from tests.netlab import stop

FIREFOX = os.environ.get("ROOMSERVER_FIREFOX") or shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
XVFB = shutil.which("Xvfb")

PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,  # a fake camera and microphone
    "media.navigator.permission.disabled": True,  # no permission prompt
    "media.autoplay.default": 0,  # remote audio may play without a gesture
    "media.peerconnection.ice.obfuscate_host_addresses": False,  # real host candidates on loopback
    "media.getusermedia.window.focus_source.enabled": False,
    "media.getdisplaymedia.enabled": True,  # screen sharing (a fake screen with the prefs above)
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.update.disabledForTesting": True,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "intl.accept_languages": "de-DE, de",
}


def unavailable_reason() -> str | None:
    """Why Firefox tests cannot run here, or None when they can."""
    if not Path(FIREFOX).exists():
        return "Debian firefox-esr is not installed (apt-get install firefox-esr)"
    if importlib.util.find_spec("marionette_driver") is None:
        return "marionette-driver is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handle:
    """What ``wait_for_function`` returns in Playwright: a value behind ``json_value()``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    async def json_value(self) -> Any:
        return self.value


class FirefoxPage:
    """One headless Firefox with one tab, with Playwright-like ``goto``, ``evaluate``, ``click`` …"""

    def __init__(self, name: str, workspace: Path, prefs: dict[str, Any] | None = None,
                 display: str | None = None) -> None:
        self.name = name
        self.workspace = workspace
        self.display = display  # an X display: a window there instead of headless
        self.prefs = {**PREFS, **(prefs or {})}
        self.console_log: list[str] = []  # Marionette gives no console; page errors are collected on navigation
        self.client = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    def _start(self) -> None:
        from marionette_driver.marionette import Marionette

        self.workspace.mkdir(parents=True, exist_ok=True)
        home = self.workspace / "home"
        home.mkdir(exist_ok=True)
        # The environment of the Firefox process: release builds call their settings service
        # unless non-local connections are disabled; HOME and XDG_RUNTIME_DIR are scratch.
        os.environ["MOZ_DISABLE_NONLOCAL_CONNECTIONS"] = "1"
        saved = {k: os.environ.get(k) for k in ("HOME", "XDG_RUNTIME_DIR", "DISPLAY")}
        os.environ["HOME"] = str(home)
        os.environ["XDG_RUNTIME_DIR"] = str(home)
        if self.display:
            os.environ["DISPLAY"] = self.display
        try:
            self.client = Marionette(bin=FIREFOX, port=_free_port(), headless=not self.display, prefs=self.prefs,
                                     workspace=str(self.workspace), startup_timeout=90,
                                     gecko_log=str(self.workspace / "gecko.log"))
            self.client.start_session()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.client.set_window_rect(width=1280, height=900)

    async def start(self) -> "FirefoxPage":
        await asyncio.to_thread(self._start)
        return self

    def _close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.cleanup()
        except Exception:  # noqa: BLE001 - a crashed browser is already gone
            pass

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    async def _call(self, fn, *args, **kwargs) -> Any:
        def locked() -> Any:
            with self._lock:
                return fn(*args, **kwargs)
        return await asyncio.to_thread(locked)

    # -- navigation -----------------------------------------------------------------------

    _ERROR_TRAP = """
      if (!window.__pageErrors) {
        window.__pageErrors = [];
        window.addEventListener("error", (e) => window.__pageErrors.push(String(e.message)));
        window.addEventListener("unhandledrejection", (e) => window.__pageErrors.push(String(e.reason)));
      }
    """

    async def goto(self, url: str) -> None:
        await self._call(self.client.navigate, url)
        await self._call(self.client.execute_script, self._ERROR_TRAP, sandbox=None)

    async def reload(self) -> None:
        await self._call(self.client.refresh)
        await self._call(self.client.execute_script, self._ERROR_TRAP, sandbox=None)

    async def current_url(self) -> str:
        return await self._call(lambda: self.client.get_url())

    @property
    def url(self) -> str:  # Playwright's is a property; only for messages here
        return "(firefox)"

    # -- scripts --------------------------------------------------------------------------

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Call the JavaScript function ``expression`` with ``arg`` in the page; await a Promise it returns.

        The function's text becomes part of the script Marionette runs (no eval in the page,
        so the page's CSP is no obstacle).
        """
        script = (
            "const [arg, resolve] = arguments;\n"
            f"Promise.resolve().then(() => ({expression})(arg)).then(\n"
            "  (value) => resolve({ok: true, value: value === undefined ? null : value}),\n"
            "  (error) => resolve({ok: false, error: String(error && error.stack || error)}));"
        )
        result = await self._call(self.client.execute_async_script, script, script_args=[arg], sandbox=None,
                                  script_timeout=30_000, new_sandbox=False)
        if not result.get("ok"):
            raise RuntimeError(f"{self.name}: script failed: {result.get('error')}")
        return result["value"]

    async def wait_for_function(self, expression: str, arg: Any = None, timeout: float = 30_000,
                                polling: float = 250) -> _Handle:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout / 1000
        while True:
            try:
                value = await self.evaluate(expression, arg)
            except RuntimeError:
                value = None  # a navigation in between; try again
            if value:
                return _Handle(value)
            if loop.time() > deadline:
                raise TimeoutError(f"{self.name}: timed out waiting for {expression[:120]}")
            await asyncio.sleep(polling / 1000)

    async def page_errors(self) -> list[str]:
        return await self.evaluate("() => window.__pageErrors || []")

    # -- input ----------------------------------------------------------------------------

    async def click(self, selector: str) -> None:
        await self.wait_for_function("(s) => { const n = document.querySelector(s);"
                                     " return !!n && !n.disabled && n.getClientRects().length > 0; }", selector)
        await self._call(lambda: self.client.find_element("css selector", selector).click())

    async def fill(self, selector: str, value: str) -> None:
        def fill() -> None:
            element = self.client.find_element("css selector", selector)
            element.clear()
            element.send_keys(value)
        await self._call(fill)

    async def screenshot(self, path: str, full_page: bool = True) -> None:
        png = await self._call(lambda: self.client.screenshot(format="binary", full=full_page))
        Path(path).write_bytes(png)


class FirefoxLauncher:
    """``await launcher(name)``: a started FirefoxPage; ``await launcher.close_all(shots)`` at the end."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="roomserver-firefox-", dir=root))
        self.pages: list[FirefoxPage] = []
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.display: str | None = None

    async def __call__(self, name: str, prefs: dict[str, Any] | None = None, screen: bool = False) -> FirefoxPage:
        display = await asyncio.to_thread(self._display) if screen else None
        page = FirefoxPage(name, self.root / f"{len(self.pages)}-{name}", prefs, display)
        self.pages.append(page)
        await page.start()
        return page

    def _display(self) -> str:
        """A virtual X display of our own (Xvfb picks a free number and tells it on a pipe)."""
        if self.display is not None:
            return self.display
        if XVFB is None:
            raise FileNotFoundError("Xvfb is not installed (apt-get install xvfb)")
        self.xvfb = subprocess.Popen([XVFB, "-displayfd", "1", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.xvfb.stdout], [], [], 20)
        number = self.xvfb.stdout.readline().decode().strip() if ready else ""
        if not number.isdigit():
            self._stop_xvfb()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        return self.display

    def _stop_xvfb(self) -> None:
        proc, self.xvfb = self.xvfb, None
        if proc is not None:
            stop(proc)

    async def close_all(self, shots: Path | None = None, prefix: str = "") -> None:
        for page in self.pages:
            if shots is not None and page.client is not None:
                try:
                    shots.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(str(shots / f"{prefix}-{page.name}.png"))
                except Exception:  # noqa: BLE001 - a closed page has no screenshot; the result stands
                    pass
            await page.close()
        await asyncio.to_thread(self._stop_xvfb)
        shutil.rmtree(self.root, ignore_errors=True)

