"""A whitespace word tokenizer for zoo models trained on generated data.

Zoo models see small made-up vocabularies, so their tokens are whole words
("red", "fox"): readable in widgets and notebooks, with no download.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..hooks import unknown_name_error


class WordTokenizer:
    """Maps whitespace-separated words to ids; id 0 is the beginning-of-sequence token."""

    def __init__(self, vocab: Sequence[str], bos: str = "<bos>"):
        vocab = list(vocab)
        if len(set(vocab)) != len(vocab):
            raise ValueError("WordTokenizer vocab has duplicate words.")
        if bos in vocab:
            raise ValueError(f"The BOS token {bos!r} must not be in vocab; it is added as id 0.")
        self.bos = bos
        self.words = [bos, *vocab]
        self.ids = {w: i for i, w in enumerate(self.words)}

    @property
    def bos_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.words)

    def _encode_one(self, text: str | Sequence[str], prepend_bos: bool) -> list[int]:
        words = text.split() if isinstance(text, str) else list(text)
        out = [self.bos_id] if prepend_bos else []
        for w in words:
            if w not in self.ids:
                raise unknown_name_error(w, self.words, what="word")
            out.append(self.ids[w])
        return out

    def encode(self, text: str | Sequence[str], prepend_bos: bool = True) -> torch.Tensor:
        """One text -> ``[1, pos]``; a list of texts (equal length) -> ``[batch, pos]``."""
        if isinstance(text, str):
            return torch.tensor([self._encode_one(text, prepend_bos)])
        rows = [self._encode_one(t, prepend_bos) for t in text]
        lengths = sorted({len(r) for r in rows})
        if len(lengths) > 1:
            raise ValueError(
                f"Texts tokenize to different lengths {lengths}; pass texts of equal length."
            )
        return torch.tensor(rows)

    def decode_list(self, tokens) -> list[str]:
        """``[pos]`` or ``[1, pos]`` ids -> list of words."""
        t = torch.as_tensor(tokens)
        if t.dim() == 0:  # one id, e.g. logits[0, -1].argmax()
            t = t[None]
        if t.dim() == 2:
            if t.shape[0] != 1:
                raise ValueError(f"to_str_tokens takes one sequence, got a batch of {t.shape[0]}.")
            t = t[0]
        ids = t.tolist()
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int)]
        bad += [i for i in ids if isinstance(i, int) and not 0 <= i < len(self.words)]
        if bad:
            raise ValueError(
                f"tokens hold ids {bad[:5]} outside this tokenizer's [0, {len(self.words)}) "
                f"(or not ints); decode integer ids from model.to_tokens(...)."
            )
        return [self.words[i] for i in ids]

    def to_dict(self) -> dict:
        return {"kind": "word", "bos": self.bos, "vocab": self.words[1:]}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        return cls(d["vocab"], bos=d.get("bos", "<bos>"))
