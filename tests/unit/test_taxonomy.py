"""The taxonomy (review §4.1) places every public method, and each runs in its notebooks.

Every public function defined in an analysis module of mechscope must be either in a
``Method`` of ``mechscope.taxonomy.METHODS`` or in ``SUPPORT`` (loaders, validators): a new
analysis that nobody placed on the review's axes fails here. Every listed function must exist,
and at least one of a method's functions must be called in each notebook it links to.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import mechscope
from mechscope import taxonomy

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

# Modules that hold no analysis method: infrastructure, models, data, views, course tooling.
NOT_METHODS = {
    "hooks", "cache", "metrics", "protocols", "models", "toy", "zoo", "widgets", "plots",
    "publish", "compat", "utils", "course", "cli", "taxonomy", "explore",
}  # fmt: skip


def _analysis_modules():
    for info in pkgutil.walk_packages(mechscope.__path__, prefix="mechscope."):
        parts = info.name.split(".")[1:]
        if parts[0] in NOT_METHODS or any(p.startswith("_") for p in parts):
            continue
        yield importlib.import_module(info.name)


def _public_functions():
    for mod in _analysis_modules():
        short = mod.__name__.removeprefix("mechscope.")
        for name, obj in vars(mod).items():
            if (
                not name.startswith("_")
                and inspect.isfunction(obj)
                and obj.__module__ == mod.__name__
            ):
                yield f"{short}.{name}"


def test_every_public_function_is_placed_on_the_axes():
    placed = {f for m in taxonomy.METHODS for f in m.functions} | set(taxonomy.SUPPORT)
    missing = sorted(set(_public_functions()) - placed)
    assert not missing, (
        f"{len(missing)} public functions are in neither taxonomy.METHODS nor taxonomy.SUPPORT: "
        f"{missing}. Add each to a Method (its axes, section, notebooks) or to SUPPORT."
    )
    assert len(placed) > 60  # the scan found the package (a wrong path would find nothing)


@pytest.mark.parametrize("method", taxonomy.METHODS, ids=lambda m: m.name)
def test_each_method_is_real_and_runs_in_its_notebooks(method):
    for axis, values in taxonomy.AXES.items():
        assert getattr(method, axis) in values, (method.name, axis)
    for f in method.functions:
        module, _, name = f.rpartition(".")
        assert callable(getattr(importlib.import_module(f"mechscope.{module}"), name)), f
    assert method.notebooks, method.name
    short = {f.rpartition(".")[2] for f in method.functions}
    for nb in method.notebooks:
        path = NOTEBOOKS / f"{nb}.ipynb"
        assert path.exists(), f"{method.name}: no notebook {path.name}"
        code = "\n".join(
            "".join(c["source"]) for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code"
        )  # fmt: skip
        assert any(re.search(rf"\b{name}\s*\(", code) for name in short), (
            f"{method.name}: none of {sorted(short)} is called in {path.name}"
        )


def test_filters_and_counts():
    inter = taxonomy.methods(causal="interventional")
    obs = taxonomy.methods(causal="observational")
    assert len(inter) + len(obs) == len(taxonomy.METHODS)
    assert all(m.causal == "interventional" for m in inter)
    assert {m.name for m in inter} >= {"Activation patching", "Causal scrubbing"}
    t = taxonomy.table(phase="developmental")
    assert [m.name for m in t.rows] == ["Training dynamics over checkpoints"] or len(t.rows) >= 1
    assert all(m.phase == "developmental" for m in t.rows)
    counts = taxonomy.table().counts("causal")
    assert counts == {"observational": len(obs), "interventional": len(inter)}
    # "both" matches either value of an axis
    local = {m.name for m in taxonomy.methods(locality="local")}
    assert "Tuned lens" in local and "Tuned lens" in {
        m.name for m in taxonomy.methods(locality="global")
    }


def test_html_escapes_and_links():
    html = taxonomy.table(link_prefix="notebooks/")._repr_html_()
    assert html.count("<tr>") == len(taxonomy.METHODS) + 1
    assert 'href="notebooks/08_activation_patching.ipynb"' in html
    md = taxonomy.table()._repr_markdown_()
    assert md.count("\n") == len(taxonomy.METHODS) + 1


def test_bad_filters_name_the_axis():
    with pytest.raises(ValueError, match=r"causal='causal'.*observational"):
        taxonomy.table(causal="causal")
    with pytest.raises(TypeError, match="unknown axis 'colour'"):
        taxonomy.table().counts("colour")
