"""Re-check that ``stdlib-lm`` retrains bit-identically, without the 69-minute full run.

Retrains the first ``--until`` steps (default 150) of the 2,000-step schedule with one thread
from the running Python's stdlib and compares the weights, rounded to float16 as shipped,
with the shipped checkpoint at that step, bit for bit. Prints the wall time and the number
of differing tensors; exits 1 on any difference.

    python tools/check_stdlib_retrain.py            # about 6 minutes on a free CPU core
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def main(argv=None) -> int:
    from mechscope.models.zoo import card, load_checkpoint
    from mechscope.toy.stdlib_corpus import load_corpus
    from mechscope.zoo.recipes_stdlib import train_stdlib_lm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--until", type=int, default=150, help="a shipped checkpoint step")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    corpus = load_corpus()
    shipped = card("stdlib-lm")
    if corpus.manifest_sha256 != shipped["data"]["manifest_sha256"]:
        print(
            f"this Python's stdlib ({corpus.python}) is not the one stdlib-lm was trained on "
            f"({shipped['data']['python']}): a retrain here gives different weights"
        )
        return 1
    start = time.perf_counter()
    model, _, _ = train_stdlib_lm(
        steps=shipped["training"]["steps"], corpus=corpus, until=args.until
    )
    wall = time.perf_counter() - start
    reference = load_checkpoint("stdlib-lm", args.until).state_dict()
    retrained = model.state_dict()
    differ = [k for k, v in reference.items() if not torch.equal(v, retrained[k])]
    print(
        f"retrained {args.until} steps in {wall:.0f} s (tokenizer included); "
        f"{len(differ)} of {len(reference)} tensors differ from the shipped checkpoint"
        + (f": {differ[:5]}" if differ else " (bit-identical)")
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
