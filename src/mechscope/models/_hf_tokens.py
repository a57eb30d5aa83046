"""Text and token handling for wrapped Hugging Face models (a mixin of ``HFModel``).

Padding is where silent errors hide: a padded batch run without its attention mask
attends to the pads, and a left-padded batch run with HF's default positions shifts
every real token. So ``forward`` takes the mask (or a tokenizer's output dict), gives
padded rows the positions they would have unpadded, and refuses token ids that
contain the pad token when no mask says which entries are padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .._core import as_tokens


class TokenMixin:
    tokenizer = None

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError(
                "This model was wrapped without a tokenizer; pass integer token ids, or "
                "wrap(hf_model, tokenizer)."
            )
        return self.tokenizer

    def _encode(self, texts: list[str], prepend_bos: bool | None) -> list[list[int]]:
        tok = self._need_tokenizer()
        rows = tok(texts, add_special_tokens=prepend_bos is not False)["input_ids"]
        bos = getattr(tok, "bos_token_id", None)
        if prepend_bos and bos is not None:
            rows = [r if r[:1] == [bos] else [bos, *r] for r in rows]
        return rows

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool | None = None) -> torch.Tensor:
        """Text -> ``[1, pos]`` ids; a list of texts of equal token length -> ``[batch, pos]``.

        prepend_bos: None = the tokenizer's own special tokens (BERT: [CLS] ... [SEP];
        GPT-2: none); True = also make sure the BOS token comes first; False = no
        special tokens. For texts of different lengths use :meth:`tokenize`.
        """
        texts = [text] if isinstance(text, str) else list(text)
        rows = self._encode(texts, prepend_bos)
        lengths = sorted({len(r) for r in rows})
        if len(lengths) > 1:
            raise ValueError(
                f"Texts tokenize to different lengths {lengths}. Use model.tokenize(texts), which "
                f"pads and returns the attention_mask, and pass its output to the model."
            )
        return torch.tensor(rows, dtype=torch.long)

    def tokenize(
        self,
        texts: str | Sequence[str],
        prepend_bos: bool | None = None,
        padding_side: str = "right",
    ) -> dict[str, torch.Tensor]:
        """Texts of any lengths -> ``{"input_ids", "attention_mask"}`` ``[batch, pos]``, padded.

        Pass the dict itself to ``model(...)`` / ``run_with_cache``; positions are then
        counted over real tokens only, so left and right padding give the same numbers.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={padding_side!r}; expected 'left' or 'right'.")
        texts = [texts] if isinstance(texts, str) else list(texts)
        rows = self._encode(texts, prepend_bos)
        tok = self._need_tokenizer()
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            pad = 0  # any id works: the mask hides it
        n = max(len(r) for r in rows)
        ids = torch.full((len(rows), n), int(pad), dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            sl = slice(n - len(r), n) if padding_side == "left" else slice(0, len(r))
            ids[i, sl] = torch.tensor(r, dtype=torch.long)
            mask[i, sl] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def to_str_tokens(self, tokens, prepend_bos: bool | None = None) -> list[str]:
        """Text or ``[pos]`` / ``[1, pos]`` ids -> one string per token."""
        tok = self._need_tokenizer()
        if isinstance(tokens, str):
            tokens = self.to_tokens(tokens, prepend_bos=prepend_bos)
        return [tok.decode([i]) for i in self._one_sequence(tokens)[0].tolist()]

    def _prepare(self, tokens, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate ``tokens`` (text, ids, or a tokenizer's output dict) -> ``(ids, mask or None)``,
        both ``[batch, pos]`` on the model's device."""
        if isinstance(tokens, Mapping):
            if "input_ids" not in tokens:
                raise ValueError(
                    f"A dict of tokens needs 'input_ids' (got keys {sorted(tokens)}); "
                    f"use model.tokenize(texts)."
                )
            if attention_mask is None:
                attention_mask = tokens.get("attention_mask")
            tokens = tokens["input_ids"]
        ids = as_tokens(self, tokens)
        ids = ids.long().to(self.device)
        mask = None
        if attention_mask is not None:
            mask = torch.as_tensor(attention_mask)
            if mask.dim() == 1:
                mask = mask[None]
            if tuple(mask.shape) != tuple(ids.shape):
                raise ValueError(
                    f"attention_mask has shape {list(mask.shape)} but tokens have "
                    f"{list(ids.shape)}; they must match ([batch, pos], 1 = real token, 0 = pad)."
                )
            mask = mask.long().to(self.device)
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("attention_mask must hold only 0 (pad) and 1 (real token).")
            if bool((mask.sum(-1) == 0).any()):
                raise ValueError("attention_mask has a row with no real tokens.")
            if bool(mask.all()):
                mask = None  # no padding: run exactly as HF does without a mask
        else:
            self._refuse_unmasked_padding(ids)
        return ids, mask

    def _refuse_unmasked_padding(self, ids: torch.Tensor) -> None:
        tok = self.tokenizer
        pad = getattr(tok, "pad_token_id", None) if tok is not None else None
        if pad is None:
            return
        # A pad id that doubles as BOS/EOS (GPT-2 style) can be real text; only a dedicated
        # pad token proves padding.
        if pad in (getattr(tok, "bos_token_id", None), getattr(tok, "eos_token_id", None)):
            return
        if bool((ids == pad).any()):
            raise ValueError(
                f"tokens contain the pad token (id {pad}) but no attention_mask was given, so the "
                f"model would attend to the padding. Pass attention_mask=..., or the dict from "
                f"model.tokenize(texts)."
            )
