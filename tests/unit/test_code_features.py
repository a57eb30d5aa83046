"""Rule labels of mechscope.toy.code_features on handmade token sequences (exact vectors)."""

import torch

from mechscope.toy.code_features import RULES, code_labels, stream_labels


def test_def_brackets_comment_and_indent():
    toks = [
        "def",
        " f",
        "(x",
        "):",
        "  #",
        " hi",
        " (",
        "\n    ",
        "return",
        " [x",
        ",",
        "\n",
        "        1",
        "]",
        "\n",
    ]
    got = code_labels(toks)
    assert got["after_def"] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert got["in_comment"] == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    # the ( inside the comment opens nothing; [ stays open across the newline
    assert got["bracket_depth"] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    # a token's indentation is that of the line its last character is on
    assert got["indent_depth"] == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    assert got["in_string"] == [0] * len(toks)


def test_strings_docstrings_and_escapes():
    toks = [
        "x",
        " =",
        ' "',
        "a",
        "(",
        '\\"',
        '"',
        " +",
        " '#'",
        "\n",
        '"""',
        "doc",
        "\n",
        "# not",
        '"""',
        "\n",
    ]
    got = code_labels(toks)
    # opening and closing quotes count as string; an escaped quote does not close it
    assert got["in_string"] == [0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    # a # inside a string (or docstring) is not a comment; ( inside a string opens nothing
    assert got["in_comment"] == [0] * len(toks)
    assert got["bracket_depth"] == [0] * len(toks)


def test_single_quoted_string_ends_at_newline_and_raw_prefix():
    toks = ["s", " =", " r", "'\\'", "'", "\n", "t", " = '", "abc", "\n", "u"]
    got = code_labels(toks)
    # r'\'' : the backslash keeps the quote from closing, as in Python's raw strings
    assert got["in_string"] == [0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]


def test_async_def_and_defaults_are_not_def():
    toks = ["async", " def", " run", "(", "default", "=", "1", "):", "\n", "def", "ault", "\n"]
    got = code_labels(toks)
    assert got["after_def"] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_tabs_count_to_the_next_multiple_of_8():
    got = code_labels(["if", " x", ":", "\n\t", "y", "\n  ", "\t", "z"])
    assert got["indent_depth"] == [0, 0, 0, 2, 2, 2, 2, 2]


def test_stream_restarts_after_bos():
    class Tok:  # token_text of a toy vocabulary
        vocab = ["<bos>", ' "', "a", "(", "\n", "x"]

        def __len__(self):
            return len(self.vocab)

        def token_text(self, i):
            return self.vocab[i]

    # file 1 leaves a string and a bracket open; file 2 starts clean
    stream = torch.tensor([0, 3, 1, 2, 0, 5, 3, 0, 1])
    got = stream_labels(Tok(), stream)
    assert set(got) == set(RULES)
    assert got["in_string"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 1]
    assert got["bracket_depth"].tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 0]
    # end: files starting at or after it are left unlabelled
    assert stream_labels(Tok(), stream, end=4)["bracket_depth"].tolist() == [
        0,
        1,
        1,
        1,
        0,
        0,
        0,
        0,
        0,
    ]
