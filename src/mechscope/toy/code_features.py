"""Rule labels for Python source, one per BPE token: the nameable "code features" that
SAE features of ``stdlib-lm`` are checked against (issue 21).

For each token of a file (its text as ``tokenizer.token_text`` gives it), the labels are

- ``in_string``: the token's last character is part of a string literal, quotes and
  docstrings included;
- ``in_comment``: the token's last character is inside a ``#`` comment (the ``#`` up to,
  not including, the newline), outside any string;
- ``indent_depth``: leading indentation of the line the token's last character is on, in
  units of 4 columns (a tab advances to the next multiple of 8, as Python counts);
- ``bracket_depth``: ``( [ {`` opened in code (not in strings or comments) and not yet
  closed, after the token;
- ``after_def``: the token holds the first character of the name after a ``def`` keyword.

A small character-level scanner computes them, from the file's first character on (the
tokenize module fails on files it cannot fully parse, and a window cut mid-file cannot be
scanned alone: it may start inside a docstring). Approximations, documented:

- f-strings are plain strings (braces inside them are string content, not brackets);
- string prefixes (``r b f u``) are ordinary identifier characters before the quote; in raw
  strings a backslash still keeps the next quote from closing the string, as in Python;
- a single-quoted string that meets an unescaped newline ends there (error recovery);
- blank and whitespace-only lines count their own whitespace as indentation, continuation
  lines (inside brackets) their visual indentation, and lines inside a multi-line string
  theirs too;
- more closers than openers clamp the bracket depth at 0.

``<bos>`` (id 0) ends a file: the scanner restarts after it, and its own labels are all 0.
"""

from __future__ import annotations

import re

import torch

RULES = ("in_string", "in_comment", "indent_depth", "bracket_depth", "after_def")
_OPEN, _CLOSE = "([{", ")]}"
_INDENT = re.compile(r"[ \t]*")

__all__ = ["RULES", "code_labels", "stream_labels"]


def _indent(prefix: str) -> int:
    col = 0
    for ch in prefix:
        col = col + 1 if ch == " " else (col // 8 + 1) * 8
    return col // 4


def _char_labels(text: str):
    """Per character: string, comment, bracket depth after it, def-name start; and the line's
    indentation level."""
    n = len(text)
    in_str = [False] * n
    in_com = [False] * n
    depth = [0] * n
    def_name = [False] * n
    indent = [0] * n
    pos = 0
    for line in text.splitlines(keepends=True):
        level = _indent(_INDENT.match(line).group())
        indent[pos : pos + len(line)] = [level] * len(line)
        pos += len(line)
    i, d, quote, prev_word, word_start = 0, 0, None, None, None
    while i < n:
        ch = text[i]
        if quote is not None:  # inside a string opened by `quote` (1 or 3 quote characters)
            in_str[i] = True
            if ch == "\\" and i + 1 < n:
                in_str[i + 1] = True
                depth[i] = depth[i + 1] = d
                i += 2
                continue
            if text.startswith(quote, i):
                for j in range(i, i + len(quote)):
                    in_str[j], depth[j] = True, d
                i += len(quote)
                quote = None
                continue
            if ch == "\n" and len(quote) == 1:
                quote = None
                in_str[i] = False
            depth[i] = d
            i += 1
            continue
        is_word = ch.isalpha() or ch == "_" or (word_start is not None and ch.isalnum())
        if word_start is not None and not is_word:
            prev_word, word_start = text[word_start:i], None
        if ch == "#":
            while i < n and text[i] != "\n":
                in_com[i], depth[i] = True, d
                i += 1
            prev_word = None
            continue
        if ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            for j in range(i, i + len(quote)):
                in_str[j], depth[j] = True, d
            i += len(quote)
            prev_word = None
            continue
        if is_word:
            if word_start is None:
                word_start = i
                if prev_word == "def":
                    def_name[i] = True
        else:
            if ch in _OPEN:
                d += 1
            elif ch in _CLOSE:
                d = max(0, d - 1)
            if not ch.isspace():
                prev_word = None
        depth[i] = d
        i += 1
    return in_str, in_com, depth, def_name, indent


def code_labels(token_texts: list[str]) -> dict[str, list[int]]:
    """Labels (see the module docstring) for the tokens of one file, scanned from its start.

    token_texts: each token's text, e.g. ``[tok.token_text(i) for i in ids]``; their
    concatenation is the file's text. Returns ``{rule: [value per token]}`` (0 / 1, or the
    depth for ``indent_depth`` and ``bracket_depth``).
    """
    text = "".join(token_texts)
    in_str, in_com, depth, def_name, indent = _char_labels(text)
    out: dict[str, list[int]] = {r: [] for r in RULES}
    end = 0
    for t in token_texts:
        start, end = end, end + len(t)
        if start == end:  # empty text: no character to read a state from
            for r in RULES:
                out[r].append(0)
            continue
        last = end - 1
        out["in_string"].append(int(in_str[last]))
        out["in_comment"].append(int(in_com[last]))
        out["indent_depth"].append(indent[last])
        out["bracket_depth"].append(depth[last])
        out["after_def"].append(int(any(def_name[start:end])))
    return out


def stream_labels(
    tokenizer, stream: torch.Tensor, end: int | None = None
) -> dict[str, torch.Tensor]:
    """Labels for a token stream of files each preceded by ``<bos>`` (id 0), as
    ``mechscope.zoo.recipes_stdlib.token_stream`` builds it: ``{rule: [len(stream)] long}``.

    end: label only the files that start before this index (the rest stay 0); windows of
    the stream's first ``end`` tokens then need no more scanning.
    """
    ids = stream.tolist()
    end = len(ids) if end is None else min(end, len(ids))
    texts = [tokenizer.token_text(i) for i in range(len(tokenizer))]
    out = {r: torch.zeros(len(ids), dtype=torch.long) for r in RULES}
    bos = [i for i, t in enumerate(ids) if t == 0] + [len(ids)]
    if not ids or ids[0] != 0:
        bos = [-1] + bos
    for a, b in zip(bos[:-1], bos[1:], strict=True):
        if a + 1 >= end:
            break
        labels = code_labels([texts[t] for t in ids[a + 1 : b]])
        for r in RULES:
            out[r][a + 1 : b] = torch.tensor(labels[r], dtype=torch.long)
    return out
