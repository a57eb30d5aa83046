"""mechscope.explore in a real browser: JupyterLab (the session's server) and Notebook 7 (its
own server, as in test_frontends.py: the lab server's ``/notebooks`` page lacks the test hooks).

Type a new prompt: the attention view's token strip and the next-token list change. Click a
head in the attribution heatmap: the attention view focuses it. Run patching from its button,
click a cell: the logit lens selects that layer and position. Hover a lens cell: the token is
highlighted in the attention strip and the patching heatmap. No request leaves the loopback.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROMPT = "red fox sun cup red fox"
CORRUPTED = "red fox sun cup blue fox"
NEW_PROMPT = "cat dog owl cat dog"  # <bos> + 5 words
NEW_CORRUPTED = "cat dog owl cat red"
SETUP = (
    "import mechscope\n"
    'model = mechscope.load("induction-2l")\n'
    f"app = mechscope.explore(model, {PROMPT!r}, corrupted={CORRUPTED!r})\n"
    "app"
)
APP = ".ms-explore"
SRC = Path(os.environ.get("MECHSCOPE_BROWSER_SRC", Path(__file__).parents[2] / "src")).resolve()


def _write_notebook(lab_server, name: str) -> str:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": SETUP,
            }  # fmt: skip
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab_server.root_dir / "browser-tests" / name).write_text(json.dumps(nb))
    return f"browser-tests/{name}"


def _strip(page) -> list[str]:
    return page.locator(f"{APP} .ms-attention .ms-attn-token").all_inner_texts()


def _type(page, box: str, text: str) -> None:
    """Clear the box, then type the last character as a keystroke (the live path)."""
    field = page.locator(f"{APP} .ms-explore-{box} input")
    field.fill(text[:-1])
    field.press(text[-1])


def _heatmap(page, title: str):
    return page.locator(f"{APP} .ms-heatmap").filter(
        has=page.locator(".ms-hm-title", has_text=title)
    )


def _type_a_prompt(lab) -> None:
    page = lab.page
    try:
        page.locator(f'{APP} .ms-attention[data-rendered="true"]').wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001
        lab.fail("the explorer's attention view did not render")
    before_strip = _strip(page)
    before_top = page.locator(f"{APP} .ms-explore-topk").inner_text()
    assert before_strip == ["<bos>", *PROMPT.split()], before_strip
    _type(page, "prompt", NEW_PROMPT)
    want = ["<bos>", *NEW_PROMPT.split()]
    # The strip (the attention widget), the top-k and the status line are three widgets that
    # Python updates one after the other: wait until all three show the typed prompt's result
    # (the top-k and the status carry the generation of the inputs they show).
    lab.wait_js(
        """([want, prompt]) => {
             const s = document.querySelector('.ms-explore .ms-explore-status');
             const top = document.querySelector('.ms-explore .ms-explore-topk');
             const toks = [...document.querySelectorAll('.ms-explore .ms-attention .ms-attn-token')];
             return s && s.dataset.generation !== '0' && toks.map((t) => t.textContent).join('|') === want
               && s.dataset.prompt === prompt && !!top && top.dataset.generation === s.dataset.generation;
           }""",
        ["|".join(want), NEW_PROMPT],
        f"the attention strip, top-k and status never all showed the typed prompt {want}",
        timeout=15_000,
    )
    assert _strip(page) == want
    top = page.locator(f"{APP} .ms-explore-topk").inner_text()
    assert top != before_top and "'dog'" not in before_top.split("\n")[0]
    # the next word of the repeat "cat dog owl cat dog" is "owl": induction, live
    assert top.split("\n")[1].startswith("'owl'"), top


def _click_a_head(lab) -> None:
    heads = _heatmap(lab.page, "per head")
    assert heads.count() == 1
    heads.locator('.ms-hm-cell[data-row="1"][data-col="2"]').click()
    attention = lab.page.locator(f"{APP} .ms-attention")
    lab.wait_attr(attention, "data-selected", "1,2", "clicking L1H2 in the DLA heatmap")


def test_explore_in_jupyterlab(lab_page, lab_server):
    lab = lab_page
    page = lab.page
    name = _write_notebook(lab_server, "explore_lab.ipynb")
    lab.run_notebook(name, timeout=90)
    _type_a_prompt(lab)
    _click_a_head(lab)

    # patching on request, then a cell of it shows its layer and position in the lens
    # the message is empty before the kernel has seen the corrupted prompt too: wait for the
    # status line of a newer generation as well
    before = page.locator(f"{APP} .ms-explore-status").get_attribute("data-generation")
    _type(page, "corrupted", NEW_CORRUPTED)
    lab.wait_js(
        """(before) => {
             const s = document.querySelector('.ms-explore .ms-explore-status');
             const m = document.querySelector('.ms-explore .ms-explore-message');
             return s.dataset.generation !== before && !m.textContent.trim();
           }""",
        before,
        "the corrupted prompt of the same length still shows a message",
        timeout=15_000,
    )
    page.locator(f"{APP} button.ms-explore-run").click()
    patching = _heatmap(page, "activation patching")
    try:
        patching.locator('.ms-hm-cell[data-panel="1"][data-row="0"][data-col="4"]').click()
    except Exception:  # noqa: BLE001
        lab.fail("the patching heatmap did not appear after its button was clicked")
    lens = page.locator(f"{APP} .ms-logit-lens")
    # attn_out of layer 0 writes the stream entering block 1: lens row 1, position 4
    lab.wait_attr(lens, "data-selected", "1,4", "clicking patching cell attn_out L0, pos 4")
    assert "layer 1_pre" in lens.locator(".ms-ll-topk").inner_text()

    # hover a token in the lens: highlighted in the attention strip and the patching heatmap
    lens.locator('.ms-ll-cell[data-layer="0"][data-pos="3"]').hover()
    attention = page.locator(f"{APP} .ms-attention")
    lab.wait_attr(attention, "data-highlight", "3", "hovering lens position 3")
    lab.wait_attr(patching, "data-highlight", "3", "hovering lens position 3 (patching)")
    assert "ms-attn-token-hl" in attention.locator(".ms-attn-token").nth(3).get_attribute("class")
    lab.wait_kernel(name, "app.attention.selected, app.lens.selected", "[1, 2] [1, 4]")
    lab.guard.assert_clean()


@pytest.fixture(scope="module")
def notebook7_explore_server(tmp_path_factory):
    """Notebook 7 (``jupyter notebook``), as tests/browser/test_frontends.py starts it."""
    lab_module = sys.modules["mechscope_tests_browser_lab"]  # loaded by conftest.py
    work = tmp_path_factory.mktemp("jupyter-notebook7-explore")
    (work / "root" / "browser-tests").mkdir(parents=True)
    server = lab_module.LabServer(work / "root", work, app="notebook", pythonpath=[SRC])
    atexit.register(server.stop)
    try:
        server.start()
    except lab_module.LabServerError as e:
        pytest.fail(f"could not start jupyter notebook: {e}", pytrace=False)
    yield server
    server.stop()


def test_explore_in_notebook7(open_page, notebook7_explore_server):
    lab = open_page(notebook7_explore_server)
    name = _write_notebook(notebook7_explore_server, "explore_nb7.ipynb")
    lab.run_notebook(name, timeout=90)
    assert lab.page.locator(".jp-LabShell").count() == 0, "this is JupyterLab, not Notebook 7"
    _type_a_prompt(lab)
    _click_a_head(lab)
    lab.guard.assert_clean()
