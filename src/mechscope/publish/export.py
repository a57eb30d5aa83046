"""Execute a notebook (widget state kept) and write it as one offline page."""

from __future__ import annotations

from pathlib import Path

from mechscope.publish.exporter import MechscopeExporter

#: Seconds one cell may run when a notebook is executed before export.
CELL_TIMEOUT = 900


def notebook_path(notebook: str | Path) -> Path:
    path = Path(notebook)
    if path.suffix != ".ipynb":
        raise ValueError(
            f"notebook={str(notebook)!r} is not a .ipynb file; pass a Jupyter notebook, "
            "e.g. notebooks/00_quickstart.ipynb"
        )
    if not path.is_file():
        raise ValueError(
            f"notebook={str(notebook)!r}: no such file (looked in {Path.cwd()}); pass the path "
            "of an existing notebook, e.g. notebooks/00_quickstart.ipynb"
        )
    return path


def execute_notebook(notebook: str | Path):
    """Run every cell of ``notebook`` (in its folder) and keep the widget state.

    Returns the executed ``nbformat.NotebookNode``; the file on disk is not changed. A cell
    that raises stops the run with nbclient's ``CellExecutionError`` (its traceback).
    """
    import nbformat
    from nbclient import NotebookClient

    path = notebook_path(notebook)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(path.resolve().parent)}},
        store_widget_state=True,  # the page renders widgets from this saved state
    )
    client.execute()
    return nb


def export_notebook(
    notebook: str | Path, out: str | Path | None = None, *, execute: bool = False
) -> Path:
    """Write ``notebook`` as one self-contained HTML page; returns the page's path.

    ``out`` defaults to the notebook's path with ``.html``. With ``execute=True`` the notebook
    is run first (nbclient, widget state stored); otherwise the widget state saved in the file
    is used, and a widget whose state was not saved shows a notice saying so.
    """
    import nbformat

    path = notebook_path(notebook)
    target = Path(out) if out is not None else path.with_suffix(".html")
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValueError(
            f"out={str(out)!r} does not end in .html; name the page, e.g. -o page.html"
        )
    nb = execute_notebook(path) if execute else nbformat.read(path, as_version=4)
    body, _ = MechscopeExporter().from_notebook_node(
        nb, {"metadata": {"name": path.stem, "path": str(path.parent)}}
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target
