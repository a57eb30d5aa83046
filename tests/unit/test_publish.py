"""mechscope.publish without a browser: the offline page's HTML, and bad inputs' errors.

The page rendering and responding in Chromium is tests/browser/test_export.py; the site,
tests/browser/test_site.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor

from mechscope import cli
from mechscope.publish import MechscopeExporter, build_site, export_notebook
from mechscope.publish.exporter import STATIC, TEMPLATES

# An element the browser loads by itself (script, stylesheet, image, frame...) from the network,
# or a stylesheet import; an <a href> is a link the reader may follow, not a request.
REMOTE = re.compile(
    r"""<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*"""
    r"""\b(src|href|data)\s*=\s*["']?\s*(https?:)?//|@import\s+(url\()?\s*["']?(https?:)?//""",
    re.I,
)

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def _widget_notebook(with_state: bool = True) -> nbformat.NotebookNode:
    """A notebook as nbclient saves it: one widget view output (+ the saved state)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nMath $x^2$ and a [link](https://example.org)."),
        nbformat.v4.new_code_cell(
            "w",
            outputs=[
                nbformat.v4.new_output(
                    "display_data",
                    data={VIEW: {"model_id": "m1", "version_major": 2, "version_minor": 0}},
                )
            ],
        ),
    ]
    if with_state:
        model = {
            "model_name": "AnyModel",
            "model_module": "anywidget",
            "model_module_version": "~0.11.*",
            "state": {"_esm": "export default { render() {} }", "_anywidget_id": "t.W"},
        }
        nb.metadata["widgets"] = {
            STATE: {"version_major": 2, "version_minor": 0, "state": {"m1": model}}
        }
    return nb


def test_template_and_page_load_nothing_remote():
    for path in (TEMPLATES / "mechscope").iterdir():
        assert "http" not in path.read_text(), f"{path.name} mentions a URL"
    # the check can fail: nbconvert's own HTML loads require.js and the manager from CDNs
    stock, _ = HTMLExporter().from_notebook_node(_widget_notebook())
    assert REMOTE.search(stock)
    html, _ = MechscopeExporter().from_notebook_node(_widget_notebook())
    assert not REMOTE.search(html), REMOTE.search(html).group(0)
    assert "<script src" not in html and "require.js" not in html
    # the manager is inlined, once, and the saved state and view are in the page
    manager = (STATIC / "widget_manager.js").read_text(encoding="utf-8")
    assert manager[:200] in html and html.count(manager[:200]) == 1
    assert html.count(f'type="{STATE}"') == 1 and html.count(f'type="{VIEW}"') == 1
    # the markdown link stays a link (an <a href>, never fetched); math stays TeX
    assert 'href="https://example.org"' in html and "$x^2$" in html


def test_manager_bundle_is_inlinable():
    js = (STATIC / "widget_manager.js").read_text(encoding="utf-8")
    assert "</script" not in js.lower()
    assert 300_000 < len(js) < 1_200_000, f"widget_manager.js is {len(js)} bytes"


class _AddWidgetOutput(Preprocessor):
    """Stands in for `nbconvert --execute`: outputs appear during preprocessing."""

    def preprocess(self, nb, resources):
        fresh = _widget_notebook()
        nb.cells, nb.metadata = fresh.cells, fresh.metadata
        return nb, resources


def test_assets_are_decided_after_execution():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w")])
    html, _ = MechscopeExporter(preprocessors=[_AddWidgetOutput]).from_notebook_node(nb)
    assert "AnyModel" in html, (
        "the manager was left out of a page whose widgets came from --execute"
    )


def test_page_without_widgets_or_plots_inlines_nothing():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Plain")])
    html, _ = MechscopeExporter().from_notebook_node(nb)
    manager = (STATIC / "widget_manager.js").read_text(encoding="utf-8")[:200]
    assert len(html) < 400_000 and manager not in html


def test_plotly_figure_becomes_an_inline_plot():
    fig = {"data": [{"type": "bar", "x": [1, 2], "y": [3, 4]}], "layout": {}}
    out = nbformat.v4.new_output("display_data", data={"application/vnd.plotly.v1+json": fig})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig", outputs=[out])])
    html, _ = MechscopeExporter().from_notebook_node(nb)
    assert "Plotly.newPlot" in html and "plotly.js v" in html.lower()
    assert not REMOTE.search(html), REMOTE.search(html).group(0)
    assert "text/html" not in out["data"], "the caller's notebook was modified"


def test_export_notebook_writes_the_page(tmp_path):
    source = tmp_path / "nb.ipynb"
    nbformat.write(_widget_notebook(), source)
    page = export_notebook(source)
    assert page == source.with_suffix(".html") and "AnyModel" in page.read_text()


def test_export_errors_name_the_argument_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"notebook='missing.ipynb': no such file.*e\.g\."):
        export_notebook("missing.ipynb")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notebook=.*is not a \.ipynb file"):
        export_notebook(tmp_path / "notes.txt")
    source = tmp_path / "nb.ipynb"
    nbformat.write(_widget_notebook(), source)
    with pytest.raises(ValueError, match=r"out='page.pdf' does not end in \.html.*-o page\.html"):
        export_notebook(source, "page.pdf")


def test_cli_missing_notebook_names_the_argument_and_the_fix(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["export"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "required: NOTEBOOK" in err and "example: mechscope export notebooks/" in err


def test_cli_bad_path_and_bad_site_options(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["export", str(tmp_path / "nope.ipynb")])
    assert e.value.code == 2
    assert "notebook=" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["site", "--from", str(tmp_path / "none"), "-o", str(tmp_path / "s")])
    assert e.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_build_site_errors(tmp_path):
    nbformat.write(_widget_notebook(), tmp_path / "00_a.ipynb")
    with pytest.raises(ValueError, match=r"only=\['99'\] matches no notebook.*\['00'\]"):
        build_site(tmp_path, tmp_path / "site", only=["99"], guide=None)
    with pytest.raises(ValueError, match=r"workers=0 must be a positive int"):
        build_site(tmp_path, tmp_path / "site", workers=0)
    with pytest.raises(ValueError, match=r"guide='nope.md': no such file.*guide=None"):
        build_site(tmp_path, tmp_path / "site", guide="nope.md")
    assert not Path(tmp_path / "site").exists(), "a bad argument must write nothing"
