"""Print the course's exercises as markdown tables (for docs/teaching.md).

    python tools/exercise_table.py            # per-notebook summary, then every exercise
    python tools/exercise_table.py --summary  # the summary only

Reads the registry (``mechscope.course.exercises.all_exercises()``): each exercise's
notebook, name, title, difficulty (1 easy - 3 hard) and time budget in minutes.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from mechscope.course.exercises import all_exercises

STARS = {1: "★☆☆", 2: "★★☆", 3: "★★★"}


def summary(exercises) -> str:
    by_nb = defaultdict(list)
    for e in exercises:
        by_nb[e.notebook].append(e)
    lines = [
        "| notebook | exercises | minutes (exercises) | difficulty 1 / 2 / 3 |",
        "| --- | ---: | ---: | --- |",
    ]
    for nb in sorted(by_nb):
        ex = by_nb[nb]
        counts = " / ".join(str(sum(e.difficulty == d for e in ex)) for d in (1, 2, 3))
        lines.append(f"| {nb} | {len(ex)} | {sum(e.minutes for e in ex)} | {counts} |")
    lines.append(
        f"| **all** | **{len(exercises)}** | **{sum(e.minutes for e in exercises)}** | "
        + " / ".join(str(sum(e.difficulty == d for e in exercises)) for d in (1, 2, 3))
        + " |"
    )
    return "\n".join(lines)


def detail(exercises) -> str:
    lines = [
        "| notebook | exercise (`exercises.check` name) | title | difficulty | minutes |",
        "| --- | --- | --- | :---: | ---: |",
    ]
    for e in exercises:
        title = e.title.replace("|", "\\|")  # a pipe in a title would split the table cell
        lines.append(
            f"| {e.notebook} | `{e.name}` | {title} | {STARS.get(e.difficulty, e.difficulty)} "
            f"| {e.minutes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", action="store_true", help="the per-notebook summary only")
    args = parser.parse_args(argv)
    exercises = all_exercises()
    print(summary(exercises))
    if not args.summary:
        print()
        print(detail(exercises))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
