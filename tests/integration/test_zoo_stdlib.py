"""stdlib-lm: the card's behaviour re-measured from the shipped float16 weights."""

import pytest
import torch

import mechscope
from mechscope.models.bpe_tokenizer import BPETokenizer
from mechscope.toy.stdlib_corpus import load_corpus
from mechscope.zoo.recipes_stdlib import behaviour, heldout_windows, token_stream


@pytest.fixture(scope="module")
def lm():
    return mechscope.load("stdlib-lm")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_tokenizer_roundtrips_code_and_shows_whitespace(lm):
    tok = lm.tokenizer
    assert isinstance(tok, BPETokenizer) and len(tok) == lm.cfg.d_vocab == 4096
    src = "def f(x):\n\tif x:\n        return [x, {'a': 1}]  # done\n"
    ids = lm.to_tokens(src)
    assert ids[0, 0] == 0 and tok.decode(ids) == src  # byte-level: exact round trip
    shown = "".join(lm.to_str_tokens(ids)[1:])
    assert "↵" in shown and "→" in shown and "·" in shown and " " not in shown


def test_card_behaviour_remeasured(lm, corpus):
    card = lm.card
    assert card["data"]["files"] == {"train": len(corpus.train), "heldout": len(corpus.heldout)}
    if corpus.manifest_sha256 != card["data"]["manifest_sha256"]:
        pytest.fail(
            f"This Python's stdlib ({corpus.python}) differs from the one stdlib-lm was trained on "
            f"({card['data']['python']}): the held-out files differ, so the card cannot be "
            "re-measured exactly here."
        )
    stream = token_stream(lm.tokenizer, corpus.heldout)
    assert len(stream) == card["data"]["tokens"]["heldout"]
    tokens = heldout_windows(stream, lm.cfg.n_ctx, card["data"]["heldout_windows"])
    torch.manual_seed(0)
    got = behaviour(lm, lm.tokenizer, tokens)
    for key, want in card["metrics"].items():
        assert got[key] == pytest.approx(want, abs=2e-3), key


def test_learned_real_code(lm):
    m = lm.card["metrics"]
    ck = lm.card["checkpoints"]["metrics"]
    # Far better than the seeded init, and copying works: repeated identifiers are predicted
    # much better than first occurrences (induction on real identifiers).
    assert m["heldout_loss"] < ck["0"]["heldout_loss"] - 3
    assert m["repeated_identifier_accuracy"] > m["first_identifier_accuracy"] + 0.15
    assert m["closing_bracket_accuracy"] > 0.4


def test_checkpoints_load_and_improve(lm):
    steps = mechscope.models.zoo.checkpoint_steps("stdlib-lm")
    assert len(steps) >= 2
    losses = [lm.card["checkpoints"]["metrics"][str(s)]["heldout_loss"] for s in steps]
    assert losses == sorted(losses, reverse=True)
    early = mechscope.models.zoo.load_checkpoint("stdlib-lm", steps[0])
    assert not torch.equal(early.W_E, lm.W_E)


def test_corpus_split_is_by_file_and_deterministic(corpus):
    train = {p for p, _ in corpus.train}
    held = {p for p, _ in corpus.heldout}
    assert not train & held and len(held) > 50
    again = load_corpus()
    assert again.manifest_sha256 == corpus.manifest_sha256
