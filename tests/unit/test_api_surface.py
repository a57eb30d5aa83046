"""The public surface obeys docs/vocabulary.md: argument names, positional counts, private
imports, module sizes.

Public = every function and class defined in a non-underscore module of ``mechscope`` (the
training recipes under ``mechscope.zoo`` and the toy data generators under ``mechscope.toy``
excepted, and the course's exercise references, whose signatures are the student's), and the public methods of those classes. Dataclass-generated ``__init__`` s are
skipped (their fields are the result's labels, not arguments).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import mechscope

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "mechscope"
VOCAB = ROOT / "docs" / "vocabulary.md"
MAX_LINES = 400


def _vocabulary() -> set[str]:
    text = VOCAB.read_text()
    concepts = text.split("## Concepts shared across methods")[1].split("## Method parameters")[0]
    names: set[str] = set()
    for line in concepts.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[2].startswith("`"):
            names.update(re.findall(r"`([a-z_][a-z0-9_]*)`", cells[2]))
    method = text.split("## Method parameters")[1].split("## Positional parameters")[0]
    names.update(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", method))
    return names


def _public_modules() -> list[str]:
    out = []
    for info in pkgutil.walk_packages(mechscope.__path__, "mechscope."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]):
            continue
        if parts[1] in ("zoo", "toy") or parts[1:3] == ["course", "exercises"]:
            continue
        out.append(info.name)
    return sorted(out)


def _callables():
    for modname in _public_modules():
        mod = importlib.import_module(modname)
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != modname:
                continue
            if inspect.isfunction(obj):
                yield f"{modname}.{name}", obj
            elif inspect.isclass(obj):
                for mname, member in vars(obj).items():
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if not inspect.isfunction(member):
                        continue
                    if mname.startswith("_") and mname != "__init__":
                        continue
                    if mname == "__init__" and dataclasses.is_dataclass(obj):
                        continue
                    if mname == "__init__" and "Protocol" in [b.__name__ for b in obj.__mro__]:
                        continue
                    yield f"{modname}.{name}.{mname}", member


CALLABLES = sorted(_callables(), key=lambda x: x[0])


def test_surface_is_found():
    names = [n for n, _ in CALLABLES]
    assert "mechscope.patching.activation_patch" in names
    assert "mechscope.metrics.logit_diff" in names
    assert len(names) > 150


def test_every_public_parameter_is_in_the_vocabulary():
    vocab = _vocabulary()
    bad = []
    for qual, fn in CALLABLES:
        for p in inspect.signature(fn).parameters.values():
            if p.name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.name not in vocab:
                bad.append(f"{qual}({p.name})")
    assert not bad, (
        "Parameters outside docs/vocabulary.md (rename to the table's name, or add a "
        "method parameter to the table in the same change):\n  " + "\n  ".join(bad)
    )


def test_positional_parameters_are_few():
    bad = []
    for qual, fn in CALLABLES:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.name not in ("self", "cls")
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        names = {p.name for p in params}
        allowed = 5 if {"clean", "corrupted"} <= names else 4
        if len(params) > allowed:
            bad.append(f"{qual}: {len(params)} positional ({', '.join(p.name for p in params)})")
    assert not bad, "Make the rest keyword-only (after `*`):\n  " + "\n  ".join(bad)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in ``path`` reads from."""
    if node.level == 0:
        return node.module or ""
    pkg = ["mechscope", *path.relative_to(SRC).parent.parts]
    pkg = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def _source_files():
    return sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_imported_from_another_module(path):
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level == 0 and not (node.module or "").startswith("mechscope"):
                continue
            base = _resolve(path, node)
            bad += [
                a.name
                for a in node.names
                if a.name.startswith("_") and not _is_module(f"{base}.{a.name}")
            ]
    assert not bad, (
        f"{path.name} imports private names {bad} from another module: move the helper to a "
        "shared private module (mechscope._core) under a plain name."
    )


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_module_size(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(SRC)} has {n} lines; split it (limit {MAX_LINES})."


def test_the_checks_can_fail(tmp_path):
    # The import check flags a private import; the size check counts lines.
    src = "from .patching import _helper\n"
    tree = ast.parse(src)
    found = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert found == ["_helper"]
    vocab = _vocabulary()
    assert {"hook", "hooks", "site", "pos", "tokens", "metric"} <= vocab
    assert "hook_name" not in vocab and "positions" not in vocab and "max_batch" not in vocab
