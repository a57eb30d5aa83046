"""Every frontend: the five widgets in Notebook 7, marimo and JupyterLab's dark theme.

One server per frontend (module scope), each on 127.0.0.1 with its config isolated in a
temporary directory; the same five widgets (``demo_widgets()`` of ``marimo_app.py``) in each:

- Notebook 7 (``jupyter notebook``): run all, each widget renders and responds (a click or
  a hover changes the DOM, and the kernel sees the new ``selected`` / ``feature``);
- marimo (``marimo run marimo_app.py``): the same, the Python side read from an echo cell
  that marimo re-runs when a widget's state changes;
- JupyterLab with the "JupyterLab Dark" theme: every visible text element of every widget
  has a WCAG contrast ratio >= 4.5 against the background behind it; screenshot in
  docs/screenshots/dark_theme.png.

Every page blocks and records any request not addressed to the loopback interface; each
test asserts there was none. The servers themselves get a dead proxy (127.0.0.1:9) for
any outgoing HTTP, and marimo's update check is off.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = Path(os.environ.get("MECHSCOPE_BROWSER_SRC", REPO / "src")).resolve()
SCREENSHOT = REPO / "docs" / "screenshots" / "dark_theme.png"
NOTEBOOK = "frontends.ipynb"
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal text
# Outgoing HTTP from the servers and kernels goes to the discard port and fails.
DEAD_PROXY = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
ROOTS = {
    "attention": ".ms-attention",
    "heatmap": ".ms-heatmap",
    "lens": ".ms-logit-lens",
    "tokens": ".ms-token-acts",
    "dashboard": ".ms-feature-dash",
}


def _rendered(name: str) -> str:
    return f'{ROOTS[name]}[data-rendered="true"]'


# ------------------------------------------------------------------- jupyter
def _demo_notebook() -> dict:
    setup = (
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "from marimo_app import demo_widgets\n\nw = demo_widgets()"
    )
    cells = [setup] + [f'w["{name}"]' for name in ROOTS]
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": src,
            }
            for src in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _jupyter(tmp_path_factory, app: str, user_settings: dict | None = None):
    lab_module = sys.modules["mechscope_tests_browser_lab"]  # loaded by conftest.py
    work = tmp_path_factory.mktemp(f"jupyter-{app}")
    root = work / "root"
    root.mkdir()
    (root / NOTEBOOK).write_text(json.dumps(_demo_notebook(), indent=1))
    server = lab_module.LabServer(
        root,
        work,
        app=app,
        pythonpath=[SRC],
        extra_env=DEAD_PROXY,
        user_settings=user_settings,
    )
    atexit.register(server.stop)
    try:
        server.start()
    except lab_module.LabServerError as e:
        pytest.fail(f"could not start jupyter {app}: {e}", pytrace=False)
    return server


@pytest.fixture(scope="module")
def notebook7_server(tmp_path_factory):
    server = _jupyter(tmp_path_factory, "notebook")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dark_lab_server(tmp_path_factory):
    theme = {"@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Dark"}}
    server = _jupyter(tmp_path_factory, "lab", user_settings=theme)
    yield server
    server.stop()


# -------------------------------------------------------------------- marimo
class MarimoServer:
    """``marimo run marimo_app.py`` on 127.0.0.1, HOME and config in a temporary dir."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.log_path = work / "marimo.log"
        self.proc: subprocess.Popen | None = None
        with socket.socket() as s:  # a free port (marimo has no "pick one and tell me")
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        home = self.work / "home"
        (home / ".config" / "marimo").mkdir(parents=True)
        env = {
            **os.environ,
            **DEAD_PROXY,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MARIMO_SKIP_UPDATE_CHECK": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        }
        cmd = [
            *(sys.executable, "-m", "marimo", "run", str(HERE / "marimo_app.py")),
            *("--host", "127.0.0.1", "--port", str(self.port), "--headless", "--no-token"),
            "--no-sandbox",
        ]
        log = open(self.log_path, "wb")  # noqa: SIM115 (the process owns it)
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"marimo exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        pytest.fail(f"marimo not ready after {timeout:.0f}s\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no marimo log)"
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(lines[-n:])


@pytest.fixture(scope="module")
def marimo_server(tmp_path_factory):
    # Not `import marimo` here: nnsight 0.8, imported by other test modules of this process,
    # breaks marimo's import (`import nnsight; import marimo` raises TypeError in marimo's
    # config dataclasses). The server runs in its own process anyway.
    if importlib.util.find_spec("marimo") is None:
        pytest.fail("marimo is not installed: pip install -e '.[dev]'", pytrace=False)
    server = MarimoServer(tmp_path_factory.mktemp("marimo"))
    atexit.register(server.stop)
    server.start()
    yield server
    server.stop()


# ------------------------------------------------------------- the checks
def _click(lab, widget, selector: str, attr: str, value: str, why: str) -> None:
    target = widget.locator(selector)
    if target.count() != 1:
        lab.fail(f"{why}: expected one element {selector!r}, found {target.count()}")
    target.click()
    lab.wait_attr(widget, attr, value, why)


def check_widgets(lab, python_state) -> None:
    """Each widget rendered with the expected cells, and responds to a hover and a click.

    ``python_state(name)`` is what Python sees of widget ``name``'s ``selected`` (or
    ``feature``) after the click, as ``str`` of the list or int.
    """
    page = lab.page
    w = {}
    for name in ROOTS:
        w[name] = page.locator(_rendered(name))
        try:
            w[name].first.wait_for(state="attached", timeout=30_000)
        except Exception:  # noqa: BLE001
            lab.fail(f"{name}: no rendered {ROOTS[name]} after 30 s")
        assert w[name].count() == 1, f"{name}: {w[name].count()} rendered copies"
        w[name].scroll_into_view_if_needed()

    # AttentionPatterns: 2 x 2 thumbnails; a click focuses L1H0
    attn = w["attention"]
    assert attn.locator(".ms-attn-thumb").count() == 4
    assert attn.locator(".ms-attn-token").count() >= 5
    _click(
        lab, attn, '.ms-attn-thumb[data-layer="1"][data-head="0"]', "data-selected", "1,0",
        "attention: clicking thumbnail L1H0",
    )  # fmt: skip

    # Heatmap: 2 x 3 cells; hover shows the value, a click selects the cell
    hm = w["heatmap"]
    assert hm.locator(".ms-hm-cell").count() == 6
    cell = hm.locator('.ms-hm-cell[data-row="1"][data-col="2"]')
    cell.hover()
    assert float(cell.get_attribute("data-value")) == pytest.approx(-0.9, abs=1e-3)
    _click(
        lab, hm, '.ms-hm-cell[data-row="1"][data-col="2"]', "data-selected", "0,1,2",
        "heatmap: clicking cell (1, 2)",
    )  # fmt: skip

    # LogitLens: 2 layers x 2 positions; hover fills the top-k list, a click selects
    lens = w["lens"]
    assert lens.locator(".ms-ll-cell").count() == 4
    lens.locator('.ms-ll-cell[data-layer="1"][data-pos="0"]').hover()
    lab.wait_attr(lens.locator(".ms-ll-topk"), "data-source", "hover", "lens: hover top-k")
    assert " fox" in lens.locator(".ms-ll-topk").inner_text()
    _click(
        lab, lens, '.ms-ll-cell[data-layer="1"][data-pos="0"]', "data-selected", "1,0",
        "lens: clicking cell (1, 0)",
    )  # fmt: skip

    # TokenActivations: 3 + 4 tokens; hover shows the value; the feature picker switches
    ta = w["tokens"]
    toks = ta.locator(".ms-tok")
    assert toks.count() == 7
    toks.nth(1).hover()  # " cat", value 0.9
    readout = ta.locator(".ms-ta-readout")
    page.wait_for_function("(el) => /0\\.9/.test(el.textContent)", arg=readout.element_handle())
    ta.locator(".ms-ta-select").select_option("1")
    lab.wait_attr(ta, "data-feature", "1", "tokens: choosing feature 1")

    # FeatureDashboard: k = 3 top contexts; "next" moves to feature 1
    dash = w["dashboard"]
    assert dash.locator(".ms-fd-context").count() == 3
    _click(lab, dash, ".ms-fd-next", "data-feature", "1", "dashboard: clicking next")

    # and Python saw every change
    expected = {
        "attention": "[1, 0]",
        "heatmap": "[0, 1, 2]",
        "lens": "[1, 0]",
        "tokens": "1",
        "dashboard": "1",
    }
    deadline = time.monotonic() + 30
    seen = {}
    while time.monotonic() < deadline:
        seen = {name: python_state(name) for name in expected}
        if seen == expected:
            break
        time.sleep(0.3)
    assert seen == expected, f"Python's view of the widgets after the clicks: {seen}"
    assert page.locator('img[src="x"]').count() == 0
    assert len(lab.guard.requests) > 5, "the request recorder saw (almost) nothing"


# --------------------------------------------------------------- the tests
def test_notebook7_renders_and_responds(open_page, notebook7_server):
    lab = open_page(notebook7_server)
    lab.run_notebook(NOTEBOOK, timeout=120)
    assert lab.page.url.split("?")[0].endswith(f"/notebooks/{NOTEBOOK}"), lab.page.url
    # Notebook 7's own shell, not JupyterLab's
    assert lab.page.locator("#main-panel, .jp-NotebookPanel").count() >= 1
    assert lab.page.locator(".jp-LabShell").count() == 0, "this is JupyterLab, not Notebook 7"
    attr = {"tokens": "feature", "dashboard": "feature"}
    check_widgets(
        lab, lambda name: lab.kernel_eval(NOTEBOOK, f'w["{name}"].{attr.get(name, "selected")}')
    )
    lab.guard.assert_clean()


def test_marimo_renders_and_responds(open_page, marimo_server):
    lab = open_page(marimo_server)
    page = lab.page
    page.goto(marimo_server.base_url + "/", wait_until="domcontentloaded", timeout=60_000)

    def python_state(name: str) -> str:
        echo = page.locator(f"#echo-{name}")
        if echo.count() != 1:
            return f"(no #echo-{name})"
        return echo.inner_text().split(": ", 1)[1]

    check_widgets(lab, python_state)
    lab.guard.assert_clean()


_CONTRAST_JS = r"""
(roots) => {
  // Any CSS colour -> [r, g, b, a] in sRGB 0..255 / 0..1, via a canvas (handles
  // rgb(), color(srgb ...), oklab() and friends alike).
  const cv = document.createElement('canvas');
  cv.width = cv.height = 1;
  const ctx = cv.getContext('2d', { willReadFrequently: true });
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = '#000';
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, bottom) => {  // top composited over an opaque bottom
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
  };
  const lum = (c) => {
    const l = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let bg = [255, 255, 255, 1];  // the canvas behind everything
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const hex = (c) => '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
  const out = [];
  for (const [name, sel] of Object.entries(roots)) {
    const root = document.querySelector(sel);
    if (!root) { out.push({ widget: name, missing: true }); continue; }
    for (const el of [root, ...root.querySelectorAll('*')]) {
      const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
      if (!text) continue;
      const st = getComputedStyle(el);
      if (!el.getClientRects().length || st.visibility === 'hidden' || +st.opacity === 0) continue;
      // WCAG 1.4.3 exempts inactive controls (a disabled "prev" button); they are reported
      // with the rest but flagged, and not held to the 4.5 ratio.
      const disabled = el.matches(':disabled') || !!el.closest(':disabled');
      const bg = background(el);
      const fg = over(rgba(st.color), bg);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      out.push({
        widget: name,
        element: el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
          ? '.' + el.className.trim().split(/\s+/).join('.') : ''),
        text: text.slice(0, 30),
        color: hex(fg),
        background: hex(bg),
        ratio: Math.round(((a + 0.05) / (b + 0.05)) * 100) / 100,
        disabled,
      });
    }
  }
  return out;
}
"""


def test_jupyterlab_dark_theme_is_legible(open_page, dark_lab_server, artifacts_dir):
    lab = open_page(dark_lab_server)
    lab.run_notebook(NOTEBOOK, timeout=120)
    page = lab.page
    theme = page.evaluate("() => document.body.dataset.jpThemeName")
    assert theme == "JupyterLab Dark", f"the lab theme is {theme!r}"
    assert page.evaluate("() => document.body.dataset.jpThemeLight") == "false"
    for name in ROOTS:
        page.locator(_rendered(name)).first.wait_for(state="attached", timeout=30_000)

    texts = page.evaluate(_CONTRAST_JS, {k: _rendered(k) for k in ROOTS})
    missing = [t["widget"] for t in texts if t.get("missing")]
    assert not missing, f"widgets not rendered: {missing}"
    per_widget = {name: sum(t["widget"] == name for t in texts) for name in ROOTS}
    assert all(n >= 2 for n in per_widget.values()), f"text elements checked: {per_widget}"

    # the screenshot: every widget, code hidden, the viewport as tall as the notebook
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:hide-all-cell-code')")
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook").first
    cells = notebook.locator(".jp-Cell")
    for _ in range(3):  # grow the viewport until the last cell is in view
        page.wait_for_timeout(300)  # relayout
        bottom = cells.last.evaluate("(el) => el.getBoundingClientRect().bottom")
        size = page.viewport_size
        if bottom <= size["height"]:
            break
        page.set_viewport_size({"width": 1100, "height": min(int(bottom) + 40, 5000)})
    top = cells.first.bounding_box()
    last = cells.last.bounding_box()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SCREENSHOT),
        animations="disabled",
        clip={
            "x": top["x"],
            "y": top["y"],
            "width": top["width"],
            "height": last["y"] + last["height"] - top["y"],
        },
    )

    # every measured ratio, for the record (artifacts are gitignored)
    (artifacts_dir / "dark_theme_contrast.json").write_text(json.dumps(texts, indent=1))
    active = [t for t in texts if not t["disabled"]]
    low = [t for t in active if t["ratio"] < MIN_CONTRAST]
    worst = min(active, key=lambda t: t["ratio"])
    report = "\n  ".join(
        f"{t['widget']}: {t['element']} {t['text']!r}: {t['color']} on {t['background']} "
        f"= {t['ratio']}" for t in low
    )  # fmt: skip
    assert not low, (
        f"{len(low)} of {len(active)} text elements below WCAG {MIN_CONTRAST}:1 in the dark "
        f"theme (worst {worst['ratio']}):\n  {report}"
    )
    lab.guard.assert_clean()


def test_theme_check_catches_low_contrast(open_page):
    """The contrast check can fail: grey on grey is flagged, white on black is not."""
    lab = open_page(SimpleNamespace(log_tail=lambda n=30: "(no server)"))
    page = lab.page
    page.set_content(
        '<div id="a" style="background:#777"><span>grey</span></div>'
        '<div id="b" style="background:rgba(0,0,0,1);color:#fff"><b>white</b></div>'
    )
    page.evaluate("() => { document.querySelector('#a span').style.color = '#888'; }")
    got = {t["widget"]: t["ratio"] for t in page.evaluate(_CONTRAST_JS, {"a": "#a", "b": "#b"})}
    assert got["a"] < 1.5 and got["b"] == 21.0, got
    lab.guard.assert_clean()
