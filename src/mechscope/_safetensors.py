"""Opening safetensors files with a clear error when a file is something else (a pickle or a
``torch.save`` zip): safetensors itself reports those as "header too large". Private."""

from __future__ import annotations

from pathlib import Path

import torch


def check_safetensors(path, what: str) -> None:
    """Raise a ValueError naming ``path`` unless it starts like a safetensors file
    (an 8-byte little-endian header length, then a JSON header)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    size = path.stat().st_size
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) == 9 and 0 < n <= size - 8 and head[8:9] == b"{":
        return
    kind = (
        "a torch.save (zip) file"
        if head[:2] == b"PK"
        else "a pickle"
        if head[:1] == b"\x80"
        else "an unknown format"
    )
    raise ValueError(
        f"{what}: path {str(path)!r} is not a safetensors file (it looks like {kind}; "
        f"{size} bytes). mechscope never unpickles files; write the object with its .save(path) "
        f"method, or convert the weights with safetensors.torch.save_file."
    )


def open_safetensors(path, what: str, device="cpu"):
    """``safetensors.safe_open`` after :func:`check_safetensors`."""
    from safetensors import safe_open

    check_safetensors(path, what)
    return safe_open(str(path), framework="pt", device=str(device))


def load_safetensors(path, what: str, device="cpu") -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` after :func:`check_safetensors`."""
    from safetensors.torch import load_file

    check_safetensors(path, what)
    return load_file(str(path), device=str(device))
