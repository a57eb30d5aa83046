"""Publish notebooks offline: self-contained HTML pages with live widgets, and a course site.

- :func:`export_notebook` / ``mechscope export NB.ipynb -o page.html`` /
  ``jupyter nbconvert --to mechscope NB.ipynb``: one HTML file that renders every saved widget
  (hover, click) with no network request (see :mod:`mechscope.publish.exporter`).
- :func:`build_site` / ``make site`` / ``mechscope site -o site/``: the tutorials and the
  teaching guide as a static website, navigation by the review's sections
  (see :mod:`mechscope.publish.site`).
"""

from __future__ import annotations

from mechscope.publish.export import execute_notebook, export_notebook
from mechscope.publish.exporter import MechscopeExporter
from mechscope.publish.site import build_site

__all__ = ["MechscopeExporter", "build_site", "execute_notebook", "export_notebook"]
