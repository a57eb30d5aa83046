"""Real text offline: the CPython standard library's own source, as a language-model corpus.

Every Python installation ships its standard library as source (code, docstrings, comments;
PSF licence), so every student already has it, offline. The corpus is built
deterministically from the running Python: a fixed rule picks the files, they are read in
sorted order, and a manifest (path, size, sha256 of each file) hashes to one number the
card records. Files are split into train and held-out by a hash of their path, so a file
never contributes to both and the split of a file that exists in two Python versions is the
same in both. Different Python versions ship different files and edits, so the corpus (and
a model retrained on it) differs across versions; the card names the version it was built
from, and the manifest hash tells whether two corpora are the same.

Excluded: ``site-packages`` (not the standard library), ``__pycache__``, ``pydoc_data``
(generated help text), ``encodings`` (mostly code-page tables of hex literals), and files
over 256 KB (generated tables).
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

EXCLUDED_DIRS = frozenset({"site-packages", "__pycache__", "pydoc_data", "encodings"})
MAX_BYTES = 256_000
HELDOUT_EVERY = 20  # one file in 20 (by path hash) is held out

__all__ = ["StdlibCorpus", "load_corpus", "stdlib_root"]


def stdlib_root() -> Path:
    """The running Python's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def _is_heldout(rel: str) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest(), 16) % HELDOUT_EVERY == 0


@dataclass(frozen=True)
class StdlibCorpus:
    """The files of the corpus and their texts.

    train, heldout: ``[(relative path, text), ...]`` sorted by path.
    manifest_sha256: sha256 over every ``path\\tsize\\tsha256`` line of the manifest.
    python: the Python version the files came from.
    """

    train: list[tuple[str, str]]
    heldout: list[tuple[str, str]]
    manifest_sha256: str
    python: str

    @property
    def n_files(self) -> int:
        return len(self.train) + len(self.heldout)

    def n_bytes(self) -> int:
        return sum(len(t.encode()) for _, t in self.train + self.heldout)


def load_corpus(root: Path | None = None) -> StdlibCorpus:
    """Read the standard library at ``root`` (default: the running Python's)."""
    import platform

    root = Path(root) if root is not None else stdlib_root()
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder; pass the stdlib folder or None.")
    files = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        if path.stat().st_size > MAX_BYTES:
            continue
        files.append((rel.as_posix(), path))
    files.sort()
    lines, train, heldout = [], [], []
    for rel, path in files:
        raw = path.read_bytes()
        lines.append(f"{rel}\t{len(raw)}\t{hashlib.sha256(raw).hexdigest()}")
        text = raw.decode("utf-8", errors="replace")
        (heldout if _is_heldout(rel) else train).append((rel, text))
    if not train:
        raise ValueError(f"root={str(root)!r} holds no standard-library .py files.")
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return StdlibCorpus(train, heldout, digest, platform.python_version())
