"""A byte-level BPE tokenizer for zoo models trained on real text (``stdlib-lm``).

Built and trained with the ``tokenizers`` package (a dependency of transformers), stored as
its JSON inside the model's card, so a zoo model carries its tokenizer and needs no hub.
Byte-level: every string encodes (no unknown token), and decoding a single token gives the
exact text it stands for, which ``to_str_tokens`` shows with whitespace made visible
(``·`` for a space, ``↵`` for a newline, ``→`` for a tab) so indentation can be read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

BOS = "<bos>"
VISIBLE = str.maketrans({" ": "·", "\n": "↵", "\t": "→"})

__all__ = ["BPETokenizer", "train_bpe"]


class BPETokenizer:
    """The interface of :class:`~mechscope.models.tokenizer.WordTokenizer` over a byte-level BPE.

    Id 0 is ``<bos>``; ``encode`` prepends it by default.
    """

    def __init__(self, tokenizer):
        self.tk = tokenizer
        if self.tk.token_to_id(BOS) != 0:
            raise ValueError(f"tokenizer: {BOS!r} must have id 0, got {self.tk.token_to_id(BOS)}.")

    @property
    def bos_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return self.tk.get_vocab_size()

    def encode(self, text: str | Sequence[str], prepend_bos: bool = True) -> torch.Tensor:
        """``[1, pos]`` ids for one string; ``[batch, pos]`` for equal-length strings."""
        texts = [text] if isinstance(text, str) else list(text)
        rows = [([0] if prepend_bos else []) + self.tk.encode(t).ids for t in texts]
        if len({len(r) for r in rows}) > 1:
            raise ValueError(
                "text: the strings tokenise to different lengths "
                f"({[len(r) for r in rows]}); pass them one at a time or make them equal length."
            )
        return torch.tensor(rows)

    def decode(self, tokens) -> str:
        """The text of ``tokens`` (``<bos>`` dropped)."""
        ids = [int(i) for i in torch.as_tensor(tokens).flatten().tolist() if int(i) != 0]
        return self.tk.decode(ids)

    def token_text(self, token_id: int) -> str:
        """The exact text one token stands for."""
        return BOS if token_id == 0 else self.tk.decode([int(token_id)])

    def decode_list(self, tokens) -> list[str]:
        """One readable string per token: whitespace shown as ``·`` ``↵`` ``→``."""
        t = torch.as_tensor(tokens).flatten().tolist()
        n = len(self)
        bad = [i for i in t if not 0 <= int(i) < n]
        if bad:
            raise ValueError(f"tokens: ids {bad[:5]} are outside the vocabulary [0, {n}).")
        return [self.token_text(i).translate(VISIBLE) for i in t]

    def to_dict(self) -> dict:
        return {"kind": "bpe", "bos": BOS, "json": self.tk.to_str()}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(d["json"]))


def train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """Train a byte-level BPE of ``vocab_size`` tokens (``<bos>`` = 0) on ``texts``.

    Deterministic for the same texts (the ``tokenizers`` trainer breaks ties by order).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer=trainer)
    return BPETokenizer(tk)
