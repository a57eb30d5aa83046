"""One self-contained HTML page per notebook, widgets live, nothing fetched (issue 16).

``jupyter nbconvert --to html`` writes pages that load require.js, the widget manager and
anywidget's front end from CDNs: offline, every widget is blank. :class:`MechscopeExporter`
uses JupyterLab's template with those script tags replaced by inlined copies of

- ``static/widget_manager.{js,css}``: ipywidgets' base manager, the base and controls widgets
  and anywidget's front end, bundled from their npm packages by ``widgets/build.mjs`` (source:
  ``widgets/html_manager/``); each widget's own code is its ``_esm`` trait, in the saved state;
- plotly.js from the ``plotly`` Python package, on pages that hold a plotly figure (plotly's
  mimetype output becomes a ``<div>`` the inlined plotly.js draws).

MathJax is not shipped: math shows as its TeX source. Images are embedded as data URIs.

Use it as ``mechscope export NB.ipynb -o page.html``, ``jupyter nbconvert --to mechscope``, or
:func:`export_notebook`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets import default

STATIC = Path(__file__).resolve().parent / "static"
TEMPLATES = Path(__file__).resolve().parent / "templates"

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY = "application/vnd.plotly.v1+json"


def _inline_js(text: str) -> str:
    """``text`` made safe inside ``<script>``: a literal ``</script`` would end the element."""
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def _manager_files() -> tuple[str, str]:
    """(js, css) of the bundled widget manager; a clear error when the bundle is missing."""
    js, css = STATIC / "widget_manager.js", STATIC / "widget_manager.css"
    missing = [p.name for p in (js, css) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the bundled widget manager {missing} is missing from {STATIC}; "
            "rebuild it: cd widgets && npm ci && npm run build"
        )
    return js.read_text(encoding="utf-8"), css.read_text(encoding="utf-8")


def _has_widgets(nb: nbformat.NotebookNode) -> bool:
    """True when the notebook saved widget state or shows a widget view."""
    if WIDGET_STATE in nb.metadata.get("widgets", {}):
        return True
    return any(
        WIDGET_VIEW in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def _plotly_outputs_to_html(nb: nbformat.NotebookNode) -> bool:
    """Give each plotly figure output a ``text/html`` div drawn by the page's plotly.js.

    Plotly's default renderer under a kernel writes only its mimetype, which nbconvert cannot
    show; its "notebook" renderer would fetch MathJax from a CDN. Returns whether any figure
    was found (then the page inlines plotly.js).
    """
    found = False
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if PLOTLY not in data:
                continue
            found = True
            from plotly.io import to_html  # lazy: plotly only for pages that plot

            data["text/html"] = to_html(
                dict(data[PLOTLY]),
                full_html=False,
                include_plotlyjs=False,
                include_mathjax=False,
                validate=False,
                default_width="100%",
                default_height=480,
            )
    return found


class MechscopeExporter(HTMLExporter):
    """nbconvert exporter: JupyterLab's HTML with the widget manager inlined (no CDN).

    Registered as ``jupyter nbconvert --to mechscope``. ``resources["mechscope"]`` may carry
    ``head_html`` (extra ``<style>``) and ``nav_html`` (shown above and below the notebook):
    the course site uses them for its navigation.
    """

    export_from_notebook = "mechscope offline HTML"

    @default("template_name")
    def _template_name_default(self) -> str:
        return "mechscope"

    @default("extra_template_basedirs")
    def _extra_template_basedirs_default(self) -> list[str]:
        return [str(TEMPLATES)]

    @default("embed_images")
    def _embed_images_default(self) -> bool:
        return True  # a markdown image must not become a file the page has to find

    def __init__(self, **kw):
        super().__init__(**kw)
        # Last in the chain, so it sees the outputs of `jupyter nbconvert --execute`.
        self.register_preprocessor(_PageAssets(), enabled=True)


class _PageAssets(Preprocessor):
    """Puts in ``resources["mechscope"]`` what the page must inline: the widget manager when
    the notebook has widgets, plotly.js when it has plotly figures (made drawable)."""

    def preprocess(self, nb, resources):
        options = dict(resources.get("mechscope") or {})
        widgets = _has_widgets(nb)
        if widgets:
            js, css = _manager_files()
            options.update(manager_js=_inline_js(js), manager_css=css)
        if _plotly_outputs_to_html(nb):  # nbconvert works on its own copy of the notebook
            from plotly.offline import get_plotlyjs  # lazy: plotly only for pages that plot

            options["plotly_js"] = _inline_js(get_plotlyjs())
        options.update(widgets=widgets)
        resources["mechscope"] = options
        return nb, resources
