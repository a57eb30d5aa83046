"""Print the course's exercises as markdown tables (for docs/teaching.md).

    python tools/exercise_table.py            # per-notebook summary, then every exercise
    python tools/exercise_table.py --summary  # the summary only
    python tools/exercise_table.py --update docs/teaching.md  # rewrite the guide's tables

Reads the registry (``mechscope.course.exercises.all_exercises()``): each exercise's
notebook, name, title, difficulty (1 easy - 3 hard) and time budget in minutes.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

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


START = "read the notebook up to the\nexercise.\n\n"  # the paragraph before the tables
END = "\n\nThis table is printed by `python tools/exercise_table.py`"
_ROW = re.compile(
    r"^(\|[^|]*\| \[(?P<nb>\d\d_[a-z_]+)\]\([^)]*\)[^|]*\|[^|]*\| (?P<read>\d+) min \| )"
    r"\d+, \d+ min \| [\d,]+ min \|$"
)
_ALL = re.compile(
    r"^\| \| \*\*all \d+\*\* \| \| \| \*\*[\d,]+, [\d,]+ min\*\* \| \*\*[\d,]+ min\*\* \|$"
)


def updated_guide(text: str, exercises) -> str:
    """``text`` (docs/teaching.md) with its exercise tables and the syllabus's exercise and
    total columns recomputed from the registry (the syllabus's read-and-run minutes are kept)."""
    by_nb = defaultdict(list)
    for e in exercises:
        by_nb[e.notebook].append(e)
    if START not in text or END not in text:
        raise ValueError("the guide lost the markers around its exercise tables")
    if text.count(START) != 1:
        raise ValueError("the guide has no single paragraph ending before its exercise tables")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    text = head + START + summary(exercises) + "\n\n" + detail(exercises) + END + tail
    lines, total_read, total_min, n_rows = [], 0, 0, 0
    for line in text.split("\n"):
        m = _ROW.match(line)
        if m:
            ex = by_nb.get(m["nb"], [])
            minutes = sum(e.minutes for e in ex)
            read = int(m["read"])
            total_read, total_min, n_rows = total_read + read, total_min + minutes, n_rows + 1
            line = f"{m[1]}{len(ex)}, {minutes} min | {read + minutes:,} min |"
        elif _ALL.match(line):
            line = (
                f"| | **all {n_rows}** | | | **{sum(len(v) for v in by_nb.values())}, "
                f"{total_min:,} min** | **{total_read + total_min:,} min** |"
            )
        lines.append(line)
    return re.sub(r"mechscope's \d+ notebooks", f"mechscope's {n_rows} notebooks", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", action="store_true", help="the per-notebook summary only")
    parser.add_argument("--update", type=Path, help="rewrite this guide's tables in place")
    args = parser.parse_args(argv)
    exercises = all_exercises()
    if args.update:
        args.update.write_text(updated_guide(args.update.read_text(), exercises))
        print("updated", args.update)
        return 0
    print(summary(exercises))
    if not args.summary:
        print()
        print(detail(exercises))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
