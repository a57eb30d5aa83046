"""The ``mechscope`` command (``[project.scripts]``).

    mechscope export NOTEBOOK.ipynb -o page.html [--execute]
    mechscope site -o site/ [--only 00,04,08] [--workers 2]

``export`` writes one self-contained HTML page whose widgets render and respond with no
network request; ``site`` builds the tutorials and the teaching guide into a static website
(see :mod:`mechscope.publish`).
"""

from __future__ import annotations

import argparse
import sys
import time


class _Parser(argparse.ArgumentParser):
    """argparse, with the command's example (its epilog) under every usage error: the fix."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        fix = f"\n{self.epilog}" if self.epilog else ""
        self.exit(2, f"{self.prog}: error: {message}{fix}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mechscope",
        description=__doc__.split("\n\n")[0],
        epilog="example: mechscope export notebooks/00_quickstart.ipynb -o quickstart.html",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    export = commands.add_parser(
        "export",
        help="one offline HTML page with live widgets",
        description="Write NOTEBOOK as one self-contained HTML page (widgets live, no network).",
        epilog="example: mechscope export notebooks/00_quickstart.ipynb -o quickstart.html --execute",
    )
    export.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to export")
    export.add_argument("-o", "--out", help="the page to write (default: NOTEBOOK with .html)")
    export.add_argument(
        "--execute",
        action="store_true",
        help="run the notebook first (needed when its widget state was not saved)",
    )

    site = commands.add_parser(
        "site",
        help="the course site (tutorials + teaching guide), offline",
        description="Build the tutorials and the teaching guide into a static website.",
        epilog="example: mechscope site -o site --only 00,04,08",
    )
    site.add_argument("-o", "--out", default="site", help="output folder (default: site)")
    site.add_argument("--from", dest="folder", default="notebooks", help="tutorials folder")
    site.add_argument("--only", default="", help="name prefixes to build, e.g. 00,04,08")
    site.add_argument("--workers", type=int, default=2, help="notebooks executed at once")
    site.add_argument("--guide", default="docs/teaching.md", help="teaching guide (markdown)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mechscope COMMAND ...``; returns the exit status (2 on a bad argument)."""
    parser = _parser()
    args = parser.parse_args(argv)
    from nbclient.exceptions import CellExecutionError  # lazy: only when a command runs

    from mechscope import publish

    start = time.perf_counter()
    try:
        if args.command == "export":
            page = publish.export_notebook(args.notebook, args.out, execute=args.execute)
            print(f"wrote {page} ({page.stat().st_size / 1e6:.2f} MB)")
        else:
            pages = publish.build_site(
                args.folder,
                args.out,
                only=[s for s in args.only.split(",") if s] or None,
                workers=args.workers,
                guide=args.guide or None,
            )
            size = sum(p.stat().st_size for p in pages)
            print(
                f"site: {len(pages)} pages, {size / 1e6:.1f} MB, in {args.out} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    except ValueError as e:
        # names the argument, what was given and the fix (see mechscope.publish)
        parser.exit(2, f"mechscope {args.command}: error: {e}\n")
    except CellExecutionError as e:
        parser.exit(1, f"mechscope {args.command}: a cell raised while executing:\n{e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
