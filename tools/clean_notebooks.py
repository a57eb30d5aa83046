"""Strip dead widget state from notebooks, keeping every other output.

    python tools/clean_notebooks.py                      # clean notebooks/*.ipynb in place
    python tools/clean_notebooks.py a.ipynb b.ipynb      # clean these
    python tools/clean_notebooks.py --check              # list what would change; exit 1 if any

A notebook saved from JupyterLab after running widget cells carries

- ``metadata.widgets``: the state of every widget model alive at save time (~27 KB per
  widget, and JupyterLab also keeps the widgets of earlier runs), and
- outputs whose bundle holds ``application/vnd.jupyter.widget-view+json``: a pointer to a
  model id that only lives in the kernel that made it; without the saved state it renders
  as an error or as nothing.

Both are removed. From a widget output only the widget-view entry goes: the rest of its
bundle (the ``text/plain`` repr, a static image fallback) stays, and an output left with
no data at all is dropped. Other outputs, execution counts and cell metadata are untouched,
and a clean notebook is not rewritten (so running this twice changes nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
REPO = Path(__file__).resolve().parents[1]


def clean(nb: dict) -> list[str]:
    """Remove dead widget state from the notebook dict ``nb`` in place; what was removed."""
    removed = []
    if "widgets" in nb.get("metadata", {}):
        state = nb["metadata"].pop("widgets")
        n = len(state.get("application/vnd.jupyter.widget-state+json", {}).get("state", {}))
        removed.append(f"metadata.widgets ({n} widget model(s))")
    for index, cell in enumerate(nb.get("cells", [])):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = []
        for out in outputs:
            data = out.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data:
                model_id = data.pop(WIDGET_VIEW).get("model_id", "?")
                removed.append(f"cell {index}: widget view of model {model_id}")
                if not data:
                    continue
            kept.append(out)
        cell["outputs"] = kept
    return removed


def dumps(nb: dict) -> str:
    """The notebook as Jupyter writes it (indent 1, UTF-8 as is, final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def clean_file(path: Path, check: bool = False) -> list[str]:
    """Clean one notebook file (unless ``check``); what was (or would be) removed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    removed = clean(nb)
    if removed and not check:
        path.write_text(dumps(nb), encoding="utf-8")
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default notebooks/*)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a notebook needs cleaning"
    )
    args = parser.parse_args(argv)
    paths = args.paths or sorted((REPO / "notebooks").glob("*.ipynb"))
    dirty = 0
    for path in paths:
        removed = clean_file(path, check=args.check)
        if removed:
            dirty += 1
            verb = "would remove" if args.check else "removed"
            print(f"{path}: {verb} " + "; ".join(removed))
    if args.check and dirty:
        print(
            f"{dirty} notebook(s) need cleaning: python tools/clean_notebooks.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
