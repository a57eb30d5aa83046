"""Fixtures for the real-browser tier: a real JupyterLab + Playwright Chromium.

Session scope: one isolated JupyterLab server (see ``_lab.py``) serving a
temporary copy of ``notebooks/`` (at the lab root) plus the test-only notebooks of
``tests/browser/notebooks/`` (under ``browser-tests/``), and one Chromium. Function scope: a fresh
browser context whose every request is checked; anything not addressed to
the loopback interface is aborted, recorded, and reported by
``NetworkGuard.assert_clean()``.

Where the tests look (all optional environment variables; the defaults are
the repository's own files):

    MECHSCOPE_BROWSER_NOTEBOOKS     directory copied to the lab root  (notebooks/)
    MECHSCOPE_BROWSER_NOTEBOOK      notebook under it to open         (00_quickstart.ipynb)
    MECHSCOPE_BROWSER_CARD          zoo card giving n_layers/n_heads  (src/mechscope/zoo/induction-2l.json)
    MECHSCOPE_BROWSER_RUN_TIMEOUT   seconds allowed for "Run All"     (150)
    MECHSCOPE_BROWSER_SRC           put first on the kernel's PYTHONPATH (src/)
    MECHSCOPE_CHROMIUM              Chromium/Chrome binary to use first (else /usr/bin/chromium,
                                    else Playwright's own chromium)
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes in tracebacks

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARTIFACTS = HERE / "artifacts"


def _load_lab_module():
    # Loaded by path so the helper needs no package (tests/ has no __init__.py)
    # and cannot clash with another tier's module of the same name.
    name = "mechscope_tests_browser_lab"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "_lab.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_lab = _load_lab_module()

INSTALL_HINT = (
    "The browser tests need Chromium. Install one of:\n"
    "  * Debian/Ubuntu:   sudo apt-get install chromium      (used from /usr/bin/chromium)\n"
    "  * any platform:    python -m playwright install chromium\n"
    "  * or point MECHSCOPE_CHROMIUM at a Chromium/Chrome binary."
)

CHROMIUM_ARGS = [
    "--no-sandbox",  # we may run as root (containers, CI)
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--metrics-recording-only",
    # Belt and braces under the page-level guard: anything that is not loopback
    # goes to a proxy on the discard port and fails (loopback bypasses proxies).
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1;localhost;[::1]",
]

# Test-only notebook directories served next to the tutorials: {folder under the lab root: source}.
EXTRA_NOTEBOOK_DIRS = {"browser-tests": HERE / "notebooks"}

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about"}


# --------------------------------------------------------------------- target
def run_timeout() -> float:
    """Seconds allowed for "Run All" of a notebook (MECHSCOPE_BROWSER_RUN_TIMEOUT, 150)."""
    return float(os.environ.get("MECHSCOPE_BROWSER_RUN_TIMEOUT", "150"))


@dataclass(frozen=True)
class QuickstartTarget:
    notebooks_dir: Path
    notebook: str
    card: Path
    run_timeout: float

    def expected_grid(self) -> tuple[int, int]:
        if not self.card.is_file():
            pytest.fail(f"zoo card not found: {self.card} (set MECHSCOPE_BROWSER_CARD to override)")
        cfg = json.loads(self.card.read_text())["config"]
        return int(cfg["n_layers"]), int(cfg["n_heads"])


@pytest.fixture(scope="session")
def quickstart_target() -> QuickstartTarget:
    env = os.environ
    target = QuickstartTarget(
        notebooks_dir=Path(env.get("MECHSCOPE_BROWSER_NOTEBOOKS", REPO / "notebooks")).resolve(),
        notebook=env.get("MECHSCOPE_BROWSER_NOTEBOOK", "00_quickstart.ipynb"),
        card=Path(
            env.get("MECHSCOPE_BROWSER_CARD", REPO / "src/mechscope/zoo/induction-2l.json")
        ).resolve(),
        run_timeout=run_timeout(),
    )
    if not (target.notebooks_dir / target.notebook).is_file():
        pytest.fail(
            f"notebook not found: {target.notebooks_dir / target.notebook} "
            "(set MECHSCOPE_BROWSER_NOTEBOOKS / MECHSCOPE_BROWSER_NOTEBOOK to override)"
        )
    return target


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------- server
@pytest.fixture(scope="session")
def lab_server(quickstart_target, tmp_path_factory):
    """A running, isolated JupyterLab; killed (with its kernels) at session end."""
    work = tmp_path_factory.mktemp("jupyter")
    root = work / "root"
    # Run against a copy: executing cells must never modify the repo's notebooks.
    shutil.copytree(
        quickstart_target.notebooks_dir,
        root,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    for folder, source in EXTRA_NOTEBOOK_DIRS.items():
        if (root / folder).exists():
            pytest.fail(
                f"{quickstart_target.notebooks_dir} already has a '{folder}' entry, which the "
                f"browser tests need for {source}; rename one of them."
            )
        shutil.copytree(
            source,
            root / folder,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
    server = _lab.LabServer(
        root,
        work,
        # kernels import mechscope from this checkout even without `pip install -e .`
        pythonpath=[Path(os.environ.get("MECHSCOPE_BROWSER_SRC", REPO / "src")).resolve()],
    )
    atexit.register(server.stop)  # also on KeyboardInterrupt / abrupt session end
    try:
        server.start()
    except _lab.LabServerError as e:
        pytest.fail(f"could not start JupyterLab: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------------- browser
def _launch_chromium(pw):
    candidates: list[str | None] = []
    if os.environ.get("MECHSCOPE_CHROMIUM"):
        candidates.append(os.environ["MECHSCOPE_CHROMIUM"])
    if Path("/usr/bin/chromium").exists():
        candidates.append("/usr/bin/chromium")
    candidates.append(None)  # Playwright's own download
    errors = []
    for exe in candidates:
        try:
            return pw.chromium.launch(
                executable_path=exe, headless=True, args=CHROMIUM_ARGS, timeout=60_000
            )
        except Exception as e:  # noqa: BLE001 (report every attempt)
            first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            errors.append(f"  {exe or 'playwright-managed chromium'}: {first}")
    pytest.fail(
        "Could not launch Chromium.\n" + INSTALL_HINT + "\nAttempts:\n" + "\n".join(errors),
        pytrace=False,
    )


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "playwright is not installed: pip install -e '.[dev]' (or pip install playwright)\n"
            + INSTALL_HINT,
            pytrace=False,
        )
    pw = sync_playwright().start()
    try:
        browser = _launch_chromium(pw)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


# -------------------------------------------------------------- network guard
def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "").lower() in LOOPBACK_HOSTS


@dataclass
class NetworkGuard:
    """Records every request of a browser context; aborts non-loopback ones."""

    requests: list[str] = field(default_factory=list, repr=False)  # URLs carry the token
    non_loopback: list[str] = field(default_factory=list)  # "METHOD url", first seen order
    aborted: set[str] = field(default_factory=set)
    checked: bool = False

    def _flag(self, kind: str, url: str) -> None:
        entry = f"{kind} {url}"
        if entry not in self.non_loopback:
            self.non_loopback.append(entry)

    def route(self, route) -> None:
        request = route.request
        if is_loopback_url(request.url):
            route.fallback()
        else:
            self._flag(request.method, request.url)
            self.aborted.add(f"{request.method} {request.url}")
            route.abort("blockedbyclient")

    def on_request(self, request) -> None:
        self.requests.append(request.url)
        if not is_loopback_url(request.url):
            self._flag(request.method, request.url)

    def on_websocket(self, ws) -> None:
        self.requests.append(ws.url)
        if not is_loopback_url(ws.url):
            self._flag("WEBSOCKET", ws.url)

    def attach(self, context) -> None:
        context.route("**/*", self.route)
        context.on("request", self.on_request)
        context.on("page", lambda p: p.on("websocket", self.on_websocket))

    def describe(self) -> str:
        return "\n  ".join(
            e + ("   (aborted by the test)" if e in self.aborted else "") for e in self.non_loopback
        )

    def assert_clean(self) -> None:
        self.checked = True
        assert not self.non_loopback, (
            f"the page made {len(self.non_loopback)} non-loopback request(s) "
            f"out of {len(self.requests)} in total:\n  " + self.describe()
        )


# ------------------------------------------------------------------ lab page
_INIT_JS = r"""
(() => {
  const ms = (window.__ms = window.__ms || {});
  ms.panel = (name) => {
    const app = window.jupyterapp;
    if (!app || !app.shell) return null;
    for (const w of app.shell.widgets('main')) {
      const path = w && w.context && w.context.path;
      if (path && (path === name || path.endsWith('/' + name)) && w.content && w.content.widgets)
        return w;
    }
    return null;
  };
  ms.codeCells = (p) => p.content.widgets.filter((c) => c.model.type === 'code');
  ms.state = (name) => {
    const p = ms.panel(name);
    const dialog = document.querySelector('.jp-Dialog');
    const base = { dialog: dialog ? dialog.innerText.slice(0, 300) : null };
    if (!p) return { ...base, panel: false };
    const sc = p.sessionContext;
    const cells = ms.codeCells(p);
    const busyPrompts = cells.filter((c) => /\*/.test((c.promptNode && c.promptNode.textContent) || '')).length;
    return {
      ...base,
      panel: true,
      ready: !!sc.isReady,
      kernel: (sc.session && sc.session.kernel && sc.session.kernel.status) || null,
      kernelName: sc.kernelDisplayName,
      codeCells: cells.length,
      busyPrompts,
      executed: cells.filter((c) => c.model.executionCount !== null).length,
      run: window.__msRun || null,
    };
  };
  ms.report = (name) => {
    const p = ms.panel(name);
    if (!p) return null;
    return ms.codeCells(p).map((c) => ({
      index: p.content.widgets.indexOf(c),
      source: c.model.sharedModel.getSource(),
      count: c.model.executionCount,
      outputs: c.model.outputs.toJSON(),
    }));
  };
})();
"""


# Every non-blank text node in a widget whose computed font-size is under 11 px.
SMALL_TEXT_JS = """el => {
  const small = [];
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (!n.textContent.trim()) continue;
    const px = parseFloat(getComputedStyle(n.parentElement).fontSize);
    if (!(px >= 11)) small.push([n.parentElement.className, n.textContent.slice(0, 30), px]);
  }
  return small;
}"""


class LabPage:
    """Drives one JupyterLab page; every failure carries diagnostics."""

    def __init__(self, page, server, guard: NetworkGuard, artifacts: Path, test_name: str):
        self.page = page
        self.server = server
        self.guard = guard
        self.artifacts = artifacts
        self.test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] | None = None  # see watch_dialogs
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.add_init_script(_INIT_JS)

    def _on_console(self, msg) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(f"[{msg.type}] {msg.text}"[:500])

    # ---------------------------------------------------------- diagnostics
    def fail(self, message: str) -> None:
        shot = self.artifacts / f"failure_{self.test_name}.png"
        try:
            self.page.screenshot(path=str(shot))
            shot_note = f"page screenshot: {shot}"
        except Exception as e:  # noqa: BLE001
            shot_note = f"(page screenshot failed: {e})"
        parts = [message, shot_note]
        if self.page_errors:
            parts.append("uncaught page errors:\n  " + "\n  ".join(self.page_errors[-10:]))
        if self.console:
            parts.append(
                "browser console (errors/warnings, last 15):\n  " + "\n  ".join(self.console[-15:])
            )
        if self.guard.non_loopback:
            parts.append("non-loopback requests:\n  " + self.guard.describe())
        parts.append(self.server.log_tail(30))
        pytest.fail("\n\n".join(parts), pytrace=False)

    def wait_until(self, describe: str, predicate, timeout: float, interval: float = 0.25):
        """Poll ``predicate()`` (returns (done, info)) until done; fail with info on timeout."""
        deadline = time.monotonic() + timeout
        info = None
        while True:
            try:
                done, info = predicate()
            except Exception as e:  # noqa: BLE001 (page navigating, app not up yet...)
                done, info = False, f"{type(e).__name__}: {e}"
            if done:
                return info
            if time.monotonic() > deadline:
                self.fail(
                    f"timed out after {timeout:.0f}s waiting for {describe}; last state: {info}"
                )
            time.sleep(interval)

    # ------------------------------------------------------------- widgets
    def widget(self, root: str, title_selector: str, title: str, what: str):
        """The one rendered widget ``root`` whose title (``title_selector``) reads ``title``."""
        w = self.page.locator(root).filter(has=self.page.locator(title_selector, has_text=title))
        try:
            w.first.wait_for(state="attached", timeout=20_000)
        except Exception:  # noqa: BLE001
            self.fail(f"no rendered {what} titled {title!r} ({root}) after running the notebook")
        if w.count() != 1:
            self.fail(f"expected one {what} titled {title!r}, found {w.count()}")
        w.scroll_into_view_if_needed()
        return w

    def last_widget(self, selector: str, what: str):
        """The last rendered ``selector`` on the page, attached and scrolled into view."""
        widget = self.page.locator(selector).last
        try:
            widget.wait_for(state="attached", timeout=20_000)
        except Exception:  # noqa: BLE001
            self.fail(f"no rendered {what} ({selector}) after running the notebook")
        widget.scroll_into_view_if_needed()
        return widget

    def wait_js(self, js: str, arg, why: str, timeout: float = 20_000) -> None:
        """Wait (``timeout`` ms) until the page function ``js(arg)`` is truthy; fail with ``why``."""
        try:
            self.page.wait_for_function(js, arg=arg, timeout=timeout)
        except Exception:  # noqa: BLE001
            self.fail(why)

    def wait_attr(self, locator, name: str, value: str, why: str) -> None:
        """Wait (20 s) until ``locator``'s attribute ``name`` equals ``value``; fail with ``why``."""
        try:
            locator.page.wait_for_function(
                "([el, name, value]) => el.getAttribute(name) === value",
                arg=[locator.element_handle(), name, value],
                timeout=20_000,
            )
        except Exception:  # noqa: BLE001
            self.fail(f"{why}: {name} is {locator.get_attribute(name)!r}, expected {value!r}")

    # ---------------------------------------------------------------- checks
    def assert_readable(self, widget) -> None:
        """No text in ``widget`` is under 11 px."""
        small = widget.evaluate(SMALL_TEXT_JS)
        assert small == [], f"text under 11 px: {small[:8]}"

    def watch_dialogs(self) -> None:
        """From now on, record (in ``self.dialogs``) and dismiss every dialog, e.g. an alert."""
        self.dialogs = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def assert_no_code_ran(self, what: str) -> None:
        """The test token ``<img src=x onerror=alert(1)>`` made no element and no dialog
        (``what`` ran as code otherwise; call ``watch_dialogs`` before running the notebook)."""
        assert self.page.locator('img[src="x"]').count() == 0
        assert self.dialogs == [], f"{what} ran as code: dialogs {self.dialogs}"

    def assert_stayed_local(self) -> None:
        """No request left the loopback, and the recorder works: it saw the kernel websocket."""
        self.guard.assert_clean()
        assert any(u.startswith("ws") for u in self.guard.requests), (
            "network recorder saw no websocket"
        )

    # --------------------------------------------------------------- actions
    def open_notebook(self, name: str, timeout: float = 60) -> dict:
        url = self.server.notebook_url(name)
        self.page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        self.wait_until(
            "the JupyterLab application (window.jupyterapp) to start",
            lambda: (self.page.evaluate("() => !!(window.jupyterapp && window.__ms)"), None),
            timeout,
        )
        try:
            self.page.evaluate(
                """(ms) => Promise.race([
                     window.jupyterapp.restored,
                     new Promise((_, no) => setTimeout(() => no(new Error(`not restored after ${ms} ms`)), ms)),
                   ])""",
                int(timeout * 1000),
            )
        except Exception as e:  # noqa: BLE001
            self.fail(f"JupyterLab failed to restore its layout: {e}")
        config = self.page.evaluate(
            "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
        )
        exts = _lab.labextensions_in_page(config)
        missing = [e for e in ("anywidget", "@jupyter-widgets/jupyterlab-manager") if e not in exts]
        disabled = config.get("disabledExtensions") or []
        if isinstance(disabled, dict):
            disabled = [k for k, v in disabled.items() if v]
        missing += [
            f"{e} (disabled)"
            for e in ("anywidget", "@jupyter-widgets/jupyterlab-manager")
            if any(str(d) == e or str(d).startswith(e + ":") for d in disabled)
        ]
        if missing:
            self.fail(
                f"lab extensions {missing} are not served to the page (found: {exts}); "
                "widgets cannot render. Check `jupyter labextension list` in this environment."
            )
        return config

    def wait_kernel_idle(self, name: str, timeout: float = 60) -> dict:
        def ready():
            st = self.page.evaluate("(n) => window.__ms.state(n)", name)
            if st.get("dialog"):
                # e.g. "Select Kernel" for a notebook without kernelspec: take the default
                btn = self.page.locator(".jp-Dialog .jp-mod-accept")
                if btn.count():
                    btn.first.click()
            return (st.get("panel") and st.get("ready") and st.get("kernel") == "idle"), st

        return self.wait_until(f"the kernel of {name} to be idle", ready, timeout)

    def run_all_cells(self, name: str, timeout: float) -> dict:
        self.page.evaluate(
            """(n) => {
              const app = window.jupyterapp, p = window.__ms.panel(n);
              app.shell.activateById(p.id);
              window.__msRun = { done: false };
              app.commands.execute('notebook:run-all-cells').then(
                (ok) => { window.__msRun = { done: true, ok }; },
                (e) => { window.__msRun = { done: true, error: String(e) }; });
            }""",
            name,
        )

        def finished():
            st = self.page.evaluate("(n) => window.__ms.state(n)", name)
            run = st.get("run") or {}
            done = run.get("done") and st.get("kernel") == "idle" and st.get("busyPrompts") == 0
            return done, st

        return self.wait_until(
            f"all cells of {name} to finish ('Run All Cells')", finished, timeout
        )

    def cell_report(self, name: str) -> list[dict]:
        return self.page.evaluate("(n) => window.__ms.report(n)", name)

    def checked_cells(self, name: str, *, all_run: bool = True, print_stderr: bool = False):
        """The cell report of ``name``; fail with the tracebacks if any cell raised, and (with
        ``all_run``) if a non-empty code cell was not executed. ``print_stderr`` prints the
        cells' stderr (allowed, but visible in the test report)."""
        cells = self.cell_report(name)
        errors, not_run, stderr = [], [], []
        for c in cells:
            if c["source"].strip() and c["count"] is None:
                not_run.append(c["index"])
            for out in c["outputs"]:
                if out.get("output_type") == "error":
                    tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                    errors.append(
                        f"cell {c['index']}: {out.get('ename')}: {out.get('evalue')}\n{tb[-1500:]}"
                    )
                elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                    text = _ANSI.sub("", "".join(out.get("text", "")))
                    stderr.append(f"cell {c['index']}: {text[:300]}")
        if print_stderr and stderr:
            print("stderr output (allowed):\n  " + "\n  ".join(stderr))
        if errors:
            self.fail(f"{len(errors)} cell(s) raised:\n\n" + "\n\n".join(errors))
        if all_run and not_run:
            self.fail(f"code cells {not_run} were not executed by 'Run All Cells'")
        return cells

    def run_notebook(self, name: str, timeout: float, *, print_stderr: bool = False) -> None:
        """Open ``name``, run every cell, and fail with the tracebacks if any cell raised."""
        self.open_notebook(name)
        self.wait_kernel_idle(name, timeout=60)
        self.run_all_cells(name, timeout=timeout)
        self.checked_cells(name, print_stderr=print_stderr)

    def run_test_notebook(self, filename: str) -> str:
        """Run ``tests/browser/notebooks/<filename>`` (served as ``browser-tests/<filename>``)
        within the "Run All" budget; its path in the lab."""
        source = EXTRA_NOTEBOOK_DIRS["browser-tests"] / filename
        if not source.is_file():
            pytest.fail(f"test notebook not found: {source}")
        name = f"browser-tests/{filename}"
        self.run_notebook(name, run_timeout())
        return name

    def wait_kernel(self, name: str, expr: str, expected: str, timeout: float = 30) -> None:
        """Poll ``kernel_eval(name, expr)`` until it prints ``expected``.

        A browser-side change (a click that sets a trait) reaches the kernel over the comm
        asynchronously: the DOM can show it before Python has it, so a single read races."""
        self.wait_until(
            f"the kernel to see {expr} == {expected}",
            lambda: ((got := self.kernel_eval(name, expr)) == expected, got),
            timeout,
        )

    def kernel_eval(self, name: str, expr: str) -> str:
        """``print(expr)`` in the notebook's kernel; its stdout (checks what Python sees)."""
        return self.page.evaluate(
            """async ([name, code]) => {
                 const kernel = window.__ms.panel(name).sessionContext.session.kernel;
                 const future = kernel.requestExecute({ code, silent: false, store_history: false });
                 let out = "";
                 future.onIOPub = (msg) => {
                   if (msg.header.msg_type === "stream") out += msg.content.text;
                   if (msg.header.msg_type === "error") out += msg.content.ename + ": " + msg.content.evalue;
                 };
                 await future.done;
                 return out.trim();
               }""",
            [name, f"print({expr})"],
        )


@pytest.fixture
def open_page(request, chromium, artifacts_dir):
    """Factory: ``open_page(server)`` is a guarded `LabPage` in a fresh browser context.

    ``server`` is a `_lab.LabServer` or anything with ``log_tail()`` (e.g. a marimo server).
    Every context is closed at teardown, and one whose guard was never checked but saw a
    non-loopback request fails the test.
    """
    opened: list[tuple[object, NetworkGuard]] = []

    def open_(server) -> LabPage:
        context = chromium.new_context(
            viewport={"width": 1400, "height": 1000},
            service_workers="block",  # so every request goes through the route below
            device_scale_factor=1,
        )
        context.set_default_timeout(30_000)
        guard = NetworkGuard()
        guard.attach(context)
        opened.append((context, guard))
        lab = LabPage(context.new_page(), server, guard, artifacts_dir, request.node.name)
        # a failure screenshot from an earlier run would only mislead
        (artifacts_dir / f"failure_{lab.test_name}.png").unlink(missing_ok=True)
        return lab

    try:
        yield open_
    finally:
        unchecked = []
        for context, guard in opened:
            try:
                context.close()
            finally:
                if not guard.checked and guard.non_loopback:
                    unchecked.append(guard.describe())
        # A test that forgot to check still gets the guard's verdict.
        if unchecked:
            pytest.fail(
                "non-loopback requests were made:\n  " + "\n  ".join(unchecked), pytrace=False
            )


@pytest.fixture
def lab_page(open_page, lab_server):
    return open_page(lab_server)


# ------------------------------------------------------------- offline pages
@pytest.fixture
def offline_page(chromium):
    """A page for ``file://`` documents: every non-file: request is aborted and recorded.

    Yields ``(page, attempted, errors)``: the page, the requests it attempted, its uncaught
    errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    attempted: list[str] = []

    def route(r):
        if r.request.url.startswith("file:"):
            r.fallback()
        else:
            attempted.append(f"{r.request.method} {r.request.url}")
            r.abort("blockedbyclient")

    context.route("**/*", route)
    context.on(
        "request",
        lambda r: (
            None if r.url.startswith(("file:", "blob:", "data:")) else attempted.append(r.url)
        ),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, attempted, errors
    finally:
        context.close()


@pytest.fixture(scope="session")
def run_module():
    """``run_module(what, module, *args, timeout=..., cwd=None)``: run ``python -m module *args``
    with this checkout's src/ on PYTHONPATH; fail (naming ``what``) unless it exits 0; its
    stdout."""

    def run(what: str, module: str, *args: str, timeout: float, cwd: Path | None = None) -> str:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{what} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
        return done.stdout

    return run
