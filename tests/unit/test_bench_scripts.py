"""Every benchmark script under bench/ still imports (its imports resolve after refactors).

Benchmarks are run by hand, not in CI, so a moved module breaks them silently; this imports
each one (top level only: every script guards its work behind ``__main__``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10, [p.name for p in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_imports(script, monkeypatch):
    assert '__name__ == "__main__"' in script.read_text(), f"{script.name} runs on import"
    monkeypatch.syspath_prepend(str(BENCH))
    name = f"_bench_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
