"""``python -m mechscope.course build [--notebooks notebooks] [--out course]``."""

from __future__ import annotations

import argparse
import sys

from .build import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mechscope.course",
        description="Course mode: build the student and instructor editions of the notebooks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write OUT/student/ and OUT/instructor/")
    b.add_argument("--notebooks", default="notebooks", help="source notebooks (default: notebooks)")
    b.add_argument("--out", default="course", help="output folder (default: course)")
    args = parser.parse_args(argv)
    try:
        written = build(args.notebooks, args.out)
    except (OSError, ValueError) as err:
        print(f"course build: {err}", file=sys.stderr)
        return 1
    n = len(written) // 2
    print(
        f"course build: {n} notebook{'s' if n != 1 else ''} -> {args.out}/student, {args.out}/instructor"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
