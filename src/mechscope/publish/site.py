"""The course site: the tutorials and the teaching guide as a static website (issue 16).

    make site                       # = mechscope site -o site
    python -m mechscope.publish.site -o site --only 00,04,08

Each notebook of ``notebooks/`` is executed (widget state kept) and exported by
:class:`~mechscope.publish.exporter.MechscopeExporter`, so every page is one self-contained
file that renders its widgets with no network request; ``docs/teaching.md`` becomes
``teaching.html``. ``index.html`` lists the notebooks by the review section (§) their first
markdown cell cites, and every page links to the index and to the previous / next notebook.

Why nbconvert and our own index rather than Jupyter Book 2 / MyST: the site must build offline
(classrooms, CI), and the MyST build fetches its theme from the network; nbconvert is already
a dependency and the pages are the same ones ``mechscope export`` writes.
"""

from __future__ import annotations

import html
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mechscope.publish.export import execute_notebook, notebook_path
from mechscope.publish.exporter import MechscopeExporter

SITE_CSS = """<style type="text/css">
.ms-site-nav { display: flex; gap: 1.5em; align-items: baseline; flex-wrap: wrap;
  font: 14px/1.5 system-ui, sans-serif; padding: 8px 16px; margin: 0 0 8px;
  border-bottom: 1px solid #ddd; background: #fafafa; }
.ms-site-nav a { color: #1a5fb4; text-decoration: none; }
.ms-site-nav a:hover { text-decoration: underline; }
.ms-site-nav .ms-site-next { margin-left: auto; }
</style>"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
{css}
<style type="text/css">
body {{ margin: 0; font: 16px/1.6 system-ui, sans-serif; color: #222; }}
main {{ max-width: 860px; margin: 0 auto; padding: 8px 24px 48px; }}
main h2 {{ border-bottom: 1px solid #ddd; padding-bottom: 4px; }}
main li {{ margin: 6px 0; }}
.ms-site-review {{ color: #555; font-size: 14px; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }}
code {{ font-size: 90%; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
</style>
</head>
<body>
{nav}
<main>
{body}
</main>
</body>
</html>
"""


@dataclass(frozen=True)
class Entry:
    """One notebook of the site: its source, page, title and the review section it cites."""

    source: Path
    page: str  # file name inside the site
    title: str  # the first markdown cell's "# " heading
    review: str  # its "Review: ..." line, or ""
    section: int | None  # the first "§N" cited; None when the cell cites none


def _read_entry(source: Path) -> Entry:
    """Title and review section of a tutorial, from its first markdown cell."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = next((ln[2:].strip() for ln in first.splitlines() if ln.startswith("# ")), "")
    review = ""
    for block in first.split("\n\n"):
        if "Review" in block:
            review = " ".join(block.replace("*", "").split())
            break
    found = re.search(r"§\s*(\d+)", first)
    return Entry(
        source=source,
        page=source.with_suffix(".html").name,
        title=title or source.stem,
        review=review,
        section=int(found.group(1)) if found else None,
    )


def _nav_html(entries: list[Entry], i: int | None, guide: bool = True) -> str:
    """Links to the index and the teaching guide, and to entry ``i``'s neighbours."""
    links = ['<a class="ms-site-home" href="index.html">Contents</a>']
    if guide:
        links.append('<a class="ms-site-guide" href="teaching.html">Teaching guide</a>')
    if i is not None and i > 0:
        prev = entries[i - 1]
        links.append(f'<a class="ms-site-prev" href="{prev.page}">← {html.escape(prev.title)}</a>')
    if i is not None and i + 1 < len(entries):
        nxt = entries[i + 1]
        links.append(f'<a class="ms-site-next" href="{nxt.page}">{html.escape(nxt.title)} →</a>')
    return '<nav class="ms-site-nav">' + " ".join(links) + "</nav>"


def _index_html(entries: list[Entry], guide: bool) -> str:
    """The contents page: the notebooks grouped by the review section they start from."""
    groups: dict[int | None, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.section, []).append(e)
    parts = [
        "<h1>mechscope: mechanistic interpretability, notebook by notebook</h1>",
        "<p>Tutorials following Bereska &amp; Gavves (2024), <em>Mechanistic Interpretability "
        "for AI Safety — A Review</em>, grouped by the section of the review each one starts "
        "from."
        + (' Instructors: see the <a href="teaching.html">teaching guide</a>.' if guide else "")
        + "</p>",
    ]
    for section in sorted(groups, key=lambda s: (s is None, s or 0)):
        heading = f"Review §{section}" if section is not None else "Beyond the review"
        parts.append(f'<h2 id="section-{section or "other"}">{heading}</h2><ul>')
        for e in groups[section]:
            parts.append(
                f'<li><a href="{e.page}">{html.escape(e.title)}</a>'
                f'<div class="ms-site-review">{html.escape(e.review)}</div></li>'
            )
        parts.append("</ul>")
    return PAGE.format(
        title="mechscope tutorials",
        css=SITE_CSS,
        nav=_nav_html(entries, None, guide),
        body="\n".join(parts),
    )


def _teaching_html(markdown_path: Path, entries: list[Entry]) -> str:
    """``docs/teaching.md`` as a page (Python-Markdown: tables, fenced code)."""
    import markdown  # lazy: only the site needs it

    text = markdown_path.read_text(encoding="utf-8")
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "toc"])
    return PAGE.format(
        title="Teaching guide", css=SITE_CSS, nav=_nav_html(entries, None), body=body
    )


def _build_page(source: Path, out: Path, nav: str) -> tuple[str, float]:
    """Execute one notebook and write its page (runs in a worker process)."""
    start = time.perf_counter()
    nb = execute_notebook(source)
    body, _ = MechscopeExporter().from_notebook_node(
        nb,
        {
            "metadata": {"name": source.stem, "path": str(source.parent)},
            "mechscope": {"head_html": SITE_CSS, "nav_html": nav},
        },
    )
    out.write_text(body, encoding="utf-8")
    return out.name, time.perf_counter() - start


def _select_notebooks(notebooks: str | Path, only: list[str] | None) -> list[Path]:
    """The ``*.ipynb`` of folder ``notebooks``, or those whose names start with one of ``only``."""
    folder = Path(notebooks)
    if not folder.is_dir():
        raise ValueError(
            f"notebooks={str(notebooks)!r} is not a folder; pass the tutorials' folder, "
            "e.g. notebooks"
        )
    found = sorted(folder.glob("*.ipynb"))
    if only:
        chosen = [p for p in found if any(p.name.startswith(s) for s in only)]
        missing = [s for s in only if not any(p.name.startswith(s) for p in found)]
        if missing:
            raise ValueError(
                f"only={missing} matches no notebook in {folder}; use name prefixes such as "
                f"{[p.name[:2] for p in found[:3]]}"
            )
        found = chosen
    if not found:
        raise ValueError(f"notebooks={str(notebooks)!r} holds no .ipynb file")
    return [notebook_path(p) for p in found]


def build_site(
    notebooks: str | Path = "notebooks",
    out: str | Path = "site",
    *,
    only: list[str] | None = None,
    workers: int = 2,
    guide: str | Path | None = "docs/teaching.md",
) -> list[Path]:
    """Build the course site into ``out``; returns the pages written (index first).

    ``only``: notebook name prefixes (``["00", "04"]``) to build a subset; ``workers``:
    notebooks executed at once (each in its own process and kernel); ``guide``: the teaching
    guide's markdown (``None`` to leave it out; the navigation still links it).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be a positive int, e.g. workers=2")
    if guide is not None and not Path(guide).is_file():
        raise ValueError(
            f"guide={str(guide)!r}: no such file; pass the teaching guide's markdown "
            "(docs/teaching.md, run from the repository root) or guide=None to leave it out"
        )
    sources = _select_notebooks(notebooks, only)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    entries = [_read_entry(p) for p in sources]
    pages = [target / "index.html"]
    pages[0].write_text(_index_html(entries, guide is not None), encoding="utf-8")
    if guide is not None:
        pages.append(target / "teaching.html")
        pages[-1].write_text(_teaching_html(Path(guide), entries), encoding="utf-8")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [
            pool.submit(
                _build_page, e.source, target / e.page, _nav_html(entries, i, guide is not None)
            )
            for i, e in enumerate(entries)
        ]
        for job in jobs:
            name, seconds = job.result()
            pages.append(target / name)
            print(f"built {name} in {seconds:.0f} s", file=sys.stderr)
    return pages


if __name__ == "__main__":  # python -m mechscope.publish.site: the same as `mechscope site`
    from mechscope.cli import main

    sys.exit(main(["site", *sys.argv[1:]]))
