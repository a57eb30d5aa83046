"""pytest settings for running the tutorials under nbval (``make test``).

nbval waits a fixed 5 s for each output message after a cell has finished (its
``IPyNbCell.output_timeout``). On a loaded 2-core machine a figure's output can take longer
than that to arrive, and nbval then fails the cell with "Timeout ... waiting for output" and
x-fails the rest of the notebook. A cell's own run time is still bounded by
``--nbval-cell-timeout``; this only lets a finished cell's outputs arrive.
"""

from __future__ import annotations

OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ == "IPyNbCell" and hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
