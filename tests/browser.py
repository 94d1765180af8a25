"""Open a local HTML file in a real headless Chromium and tell a test what the browser saw.

``open_page(path)`` returns a :class:`Page`: the DOM after the page's scripts ran, the
errors a user would see in the browser's console, every URL the page requested, and
optionally a screenshot. The ``chromium`` fixture hands tests the browser's path, skipping
them (or, in CI, failing them) when there is none. Use it from a test module with::

    from browser import chromium as chromium  # the fixture; the alias tells ruff it is used
    from browser import open_page

    def test_report(chromium, tmp_path):
        page = open_page(tmp_path / "report.html", browser=chromium)

How each piece is obtained, and why
-----------------------------------
No Python dependency is added (no playwright, selenium or websocket library): Chromium is
started by its command line with ``--remote-debugging-pipe``, which makes it speak the
DevTools protocol as NUL-terminated JSON over file descriptors 3 (in) and 4 (out), so
``os.pipe`` and ``json`` are all it takes. The plain command-line switches were tried
first and fall short on the Chromium Debian 12 ships (156):

- ``--enable-logging=stderr`` prints every console message of a web page as
  ``INFO:CONSOLE:<line>] "<text>", source: <url> (<line>)``, whatever its level (Chromium
  keeps the real level only for its own pages), so ``console.error`` cannot be told from
  ``console.log``; and failed resource loads are not printed at all.
- ``--log-net-log`` records the browser's own background traffic (update and account
  checks) mixed with the page's, and file:// loads do not go through the network stack.

Over the protocol, for one tab attached with ``Target.attachToTarget``:

- ``dom``: ``DOM.getOuterHTML`` of the document once ``Page.loadEventFired`` came and one
  more animation frame and zero-delay timer ran; the browser's serializer, so a page cannot
  fake it. ``--dump-dom`` prints the same serialization, also taken at the load event.
- ``console_errors``: ``Runtime.consoleAPICalled`` of type ``error`` or ``assert``,
  ``Runtime.exceptionThrown`` (uncaught exceptions and unhandled rejections) and
  ``Log.entryAdded`` at level ``error`` (the browser's own red lines, such as
  ``Failed to load resource``): what a user sees in red in the DevTools console.
- ``requests``: the URL of every ``Network.requestWillBeSent`` of the tab, file://
  included, so a test can assert nothing else was asked for (inline data: images fetch
  nothing and are not listed).
- the screenshot: ``Page.captureScreenshot`` as PNG of a 1400x1000 viewport set with
  ``Emulation.setDeviceMetricsOverride``.

The browser runs headless, without a sandbox (tests run as root), with a throwaway
``--user-data-dir`` and without first-run, extension, sync or background-network noise, in
a process group of its own that is killed whole when the page is done or ``timeout``
seconds have passed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

CANDIDATES = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")
VIEWPORT = (1400, 1000)
NO_CHROMIUM_VARIABLE = "PARAFACTORY_NO_CHROMIUM"


class BrowserError(RuntimeError):
    """Chromium could not open the page; the message says what it printed."""


class BrowserTimeout(BrowserError, TimeoutError):
    """Chromium did not finish within the timeout; its process group was killed."""


@dataclass
class Page:
    """What the browser saw of one page."""

    dom: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path; skips without one, except in CI, where a missing browser fails.

    CI installs Chromium itself and, when it cannot, says why in PARAFACTORY_NO_CHROMIUM,
    which turns the failure back into a skip with that reason.
    """
    found = find_chromium()
    if found:
        return found
    reason = os.environ.get(NO_CHROMIUM_VARIABLE)
    if reason:
        pytest.skip(f"no Chromium: {reason}")
    if os.environ.get("CI") == "true":
        pytest.fail(
            "CI=true but no Chromium on PATH (looked for " + ", ".join(CANDIDATES) + "): "
            "install it (apt-get install chromium), or set PARAFACTORY_NO_CHROMIUM=<why>"
        )
    pytest.skip("no Chromium on PATH (apt-get install chromium to run the browser tests)")


def open_page(
    path: Path,
    screenshot: Path | None = None,
    timeout: float = 60,
    browser: str | None = None,
) -> Page:
    """Load ``path`` in headless Chromium and return what it saw; save a PNG if asked.

    ``browser`` defaults to :func:`find_chromium`. Raises :class:`BrowserError` when the
    page cannot be opened and :class:`BrowserTimeout` when it is not done (loaded, shot
    and serialized) within ``timeout`` seconds; the browser is gone either way.
    """
    browser = browser or find_chromium()
    if browser is None:
        raise BrowserError("no Chromium on PATH: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="parafactory-chromium-") as scratch:
        with _Session(browser, Path(scratch), time.monotonic() + timeout) as session:
            return session.load(Path(path).resolve().as_uri(), screenshot)


def _command(browser: str, profile: Path) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-component-extensions-with-background-pages",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
        "about:blank",
    ]


class _Session:
    """One browser process and one tab, spoken to over the DevTools pipe."""

    def __init__(self, browser: str, scratch: Path, deadline: float) -> None:
        self.deadline = deadline
        self.stderr_path = scratch / "stderr.log"
        self.events: list[dict[str, Any]] = []
        self.buffer = b""
        self.next_id = 0
        self.session_id: str | None = None
        self.process = self._start(browser, scratch)

    def _start(self, browser: str, scratch: Path) -> subprocess.Popen[bytes]:
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Chromium reads fd 3 and writes fd 4; bash (dash takes one-digit fds only) moves our
        # pipe ends there from fds numbered 10 and up, so moving one cannot overwrite the other.
        low_r = _above(to_browser_r, 10)
        low_w = _above(from_browser_w, 10)
        shell = f'exec "$0" "$@" 3<&{low_r} 4>&{low_w} {low_r}<&- {low_w}>&-'
        with open(self.stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                ["bash", "-c", shell, *_command(browser, scratch / "profile")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(low_r, low_w),
                start_new_session=True,
            )
        for fd in (to_browser_r, from_browser_w, low_r, low_w):
            os.close(fd)
        return process

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.call("Browser.close", session=False)
                self.process.wait(timeout=max(0.1, min(5.0, self.deadline - time.monotonic())))
        except (BrowserError, subprocess.TimeoutExpired):
            pass
        finally:
            self._kill()

    def _kill(self) -> None:
        self._kill_group()
        self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)

    def load(self, url: str, screenshot: Path | None) -> Page:
        self._attach()
        for domain in ("Page", "Runtime", "Log", "Network", "DOM"):
            self.call(f"{domain}.enable")
        width, height = VIEWPORT
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        navigated = self.call("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise BrowserError(f"Chromium could not open {url}: {navigated['errorText']}")
        self.wait_for("Page.loadEventFired")
        self._settle()
        if screenshot is not None:
            shot = self.call("Page.captureScreenshot", {"format": "png"})
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        root = self.call("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        dom = self.call("DOM.getOuterHTML", {"nodeId": root})["outerHTML"]
        return Page(dom=dom, console_errors=self._errors(), requests=self._requests())

    def _attach(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session_id = attached["sessionId"]

    def _settle(self) -> None:
        """Let one animation frame and the zero-delay timers queued by load handlers run."""
        self.call(
            "Runtime.evaluate",
            {
                "expression": "new Promise(done => requestAnimationFrame(() => setTimeout(done)))",
                "awaitPromise": True,
            },
        )

    def _page_events(self, method: str) -> list[dict[str, Any]]:
        return [
            event["params"]
            for event in self.events
            if event.get("method") == method and event.get("sessionId") == self.session_id
        ]

    def _errors(self) -> list[str]:
        """The red lines of the console, in the order the browser reported them."""
        errors = []
        for event in self.events:
            if event.get("sessionId") == self.session_id:
                line = _error_line(event.get("method", ""), event.get("params", {}))
                if line is not None:
                    errors.append(line)
        return errors

    def _requests(self) -> list[str]:
        return [sent["request"]["url"] for sent in self._page_events("Network.requestWillBeSent")]

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: bool = True
    ) -> dict[str, Any]:
        """Send one protocol command and read until its answer, keeping the events between."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session_id
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") != self.next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise BrowserError(f"Chromium refused {method}: {reply['error']}")
            else:
                result: dict[str, Any] = reply.get("result", {})
                return result

    def wait_for(self, method: str) -> None:
        """Read until this tab reports the event ``method`` (it may already have)."""
        while not self._page_events(method):
            self.events.append(self._read())

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            ready, _, _ = select.select([self.from_browser], [], [], max(0.0, left))
            if not ready:
                self._kill_and_raise(BrowserTimeout, "did not finish in time")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                self._kill_and_raise(BrowserError, "exited before the page was done")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def _kill_group(self) -> None:
        """Kill the browser's whole process group (renderers, GPU and zygote included)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _kill_and_raise(self, error: type[BrowserError], what: str) -> NoReturn:
        self._kill_group()
        tail = self.stderr_path.read_text(errors="replace")[-2000:]
        raise error(f"Chromium {what}; its process group was killed. Its stderr ends:\n{tail}")


def _above(fd: int, lowest: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)


def _error_line(method: str, params: dict[str, Any]) -> str | None:
    """One console error as a user would read it, or None for anything that is not one."""
    if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        text = " ".join(_shown(arg) for arg in params.get("args", []))
        return f"console.{params['type']}: {text}{_where(params.get('stackTrace'))}"
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        thrown = details.get("exception", {}).get("description", "").splitlines()
        return " ".join([details["text"], *thrown[:1]]) + _where(details.get("stackTrace"))
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        return f"{entry['text']} ({entry.get('url', '')})"
    return None


def _shown(value: dict[str, Any]) -> str:
    """A console argument as the console prints it."""
    if "value" in value:
        shown = value["value"]
        return shown if isinstance(shown, str) else json.dumps(shown)
    return str(value.get("description") or value.get("unserializableValue") or value["type"])


def _where(stack: dict[str, Any] | None) -> str:
    frames = (stack or {}).get("callFrames") or []
    if not frames:
        return ""
    top = frames[0]
    return f" ({top['url']}:{top['lineNumber'] + 1})"
