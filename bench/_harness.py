"""Shared benchmark plumbing: offline headless Chromium, a loopback server, a widget host.

- ``widget_payload(widget)``: the widget's state split as Jupyter sends it (JSON + buffers).
- ``stage_widget(...)``: a folder with bench/harness.html, the bundle, config and buffers.
- ``serve(folder)``: a quiet http.server on 127.0.0.1 (context manager, yields the base URL).
- ``first_paint(url, ...)``: open a page in Debian's Chromium with every non-loopback request
  blocked (and counted) and return ms from navigation start until a "rendered" condition.

Reused by every widget benchmark; nothing here knows about a particular widget.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Payload:
    """A widget's state as Jupyter ships it: JSON-able state plus binary buffers."""

    state: dict[str, Any]
    buffer_paths: list[list[str | int]]
    buffers: list[bytes]

    @property
    def json_bytes(self) -> int:
        return len(json.dumps(self.state, separators=(",", ":")).encode())

    @property
    def buffer_bytes(self) -> int:
        return sum(len(b) for b in self.buffers)

    @property
    def raw_bytes(self) -> int:
        """JSON state + raw buffers (what crosses the websocket)."""
        return self.json_bytes + self.buffer_bytes

    @property
    def notebook_bytes(self) -> int:
        """JSON state + base64 buffers (what a saved notebook's widget state holds)."""
        return self.json_bytes + sum(len(base64.b64encode(b)) for b in self.buffers)


def widget_payload(widget: Any) -> Payload:
    """Split ``widget.get_state()`` into JSON state and buffers, as ipywidgets does."""
    from ipywidgets.widgets.widget import _remove_buffers

    state, paths, buffers = _remove_buffers(widget.get_state())
    return Payload(dict(state), [list(p) for p in paths], [bytes(b) for b in buffers])


def stage_widget(
    folder: Path,
    esm: str | Path,
    css: str | Path | None,
    payload: Payload,
    *,
    rendered_selector: str = '[data-rendered="true"]',
) -> Path:
    """Write harness.html, the bundle, its CSS, config.json and buffers into ``folder``.

    The bundle and CSS are taken from files (not from the state's ``_esm`` string) so the
    page runs exactly the committed build. Returns the page's path.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy(BENCH / "harness.html", folder / "index.html")
    shutil.copy(esm, folder / "widget.js")
    if css is not None:
        shutil.copy(css, folder / "widget.css")
    names = []
    for i, buf in enumerate(payload.buffers):
        names.append(f"buffer{i}.bin")
        (folder / names[-1]).write_bytes(buf)
    # The harness imports the bundle from a file, so drop the inline copies from the state.
    state = {k: v for k, v in payload.state.items() if k not in ("_esm", "_css")}
    config = {
        "esm": "widget.js",
        "css": "widget.css" if css is not None else None,
        "state": state,
        "buffer_paths": payload.buffer_paths,
        "buffers": names,
        "rendered_selector": rendered_selector,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "index.html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (random port) for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PaintResult:
    ms: float | None  # None: the condition was not met within the cap
    blocked: list[str] = field(default_factory=list)  # non-loopback requests refused
    error: str | None = None
    console_errors: list[str] = field(default_factory=list)


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in ("file", "data", "blob", "about"):
        return True
    return parsed.hostname in _LOOPBACK


# Run in the page before its own scripts. `at`: first time the "rendered" expression holds
# (checked on every DOM mutation); `painted`: once the frame showing that DOM has been
# produced (rAF runs just before the frame, the task queued from it runs after).
_WATCH = """
(() => {
  const paint = (window.__paint = { at: null, painted: null });
  const check = () => { try { return Boolean(%s); } catch (e) { return false; } };
  const observer = new MutationObserver(() => {
    if (paint.at !== null || !check()) return;
    paint.at = performance.now();
    observer.disconnect();
    requestAnimationFrame(() => setTimeout(() => { paint.painted = performance.now(); }, 0));
  });
  observer.observe(document, { subtree: true, childList: true, attributes: true });
})();
"""


def first_paint(
    url: str,
    *,
    rendered_js: str,
    cap_s: float = 300.0,
    harness: bool = False,
    screenshot: Path | None = None,
    viewport: tuple[int, int] = (1400, 1000),
) -> PaintResult:
    """Milliseconds from navigation start until the frame in which ``rendered_js`` holds.

    ``rendered_js`` is a JS expression over the page's DOM (e.g. a selector test). With
    ``harness=True`` (the page is bench/harness.html) a widget error ends the wait early.
    Every request that is not loopback/file is aborted and listed in ``blocked``: a widget
    that needs the network shows up there (and usually fails to render).
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    console_errors: list[str] = []
    done = "window.__paint && window.__paint.painted !== null"
    if harness:
        done = f"({done}) || (window.__harness && window.__harness.error)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})

            def route(r: Any) -> None:
                if _is_local(r.request.url):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.on("crash", lambda _: console_errors.append("renderer crashed"))
            page.add_init_script(_WATCH % rendered_js)
            try:
                page.goto(url, wait_until="commit")
                # Slow pages keep the main thread busy for minutes; poll gently.
                page.wait_for_function(
                    done, timeout=cap_s * 1000, polling=100 if cap_s <= 60 else 1000
                )
                paint = page.evaluate("window.__paint")
                error = (
                    page.evaluate("window.__harness && window.__harness.error") if harness else None
                )
            except PlaywrightTimeout:
                return PaintResult(
                    None, blocked, f"not rendered within {cap_s:.0f} s", console_errors
                )
            except PlaywrightError as err:  # e.g. the renderer crashed
                return PaintResult(
                    None, blocked, f"{type(err).__name__}: {str(err)[:200]}", console_errors
                )
            if screenshot is not None:  # best effort: a page still busy may not answer
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                try:
                    page.screenshot(path=str(screenshot), full_page=True, timeout=120_000)
                except PlaywrightError as err:
                    console_errors.append(f"screenshot failed: {str(err)[:120]}")
            if error:
                return PaintResult(None, blocked, str(error), console_errors)
            return PaintResult(float(paint["painted"]), blocked, None, console_errors)
        finally:
            browser.close()
