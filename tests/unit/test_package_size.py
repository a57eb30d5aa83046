"""The wheel stays small enough for a classroom's pip (issue 18: <= 40 MB with the zoo).

Measured the way a wheel stores it: every file the package ships, deflated into a zip.
"""

import io
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mechscope"
LIMIT_MB = 40


def test_package_deflates_under_the_wheel_limit():
    files = [
        p
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, p.relative_to(PACKAGE.parent))
    size_mb = buf.tell() / 1e6
    largest = sorted(files, key=lambda p: p.stat().st_size)[-3:]
    assert size_mb <= LIMIT_MB, (
        f"the package deflates to {size_mb:.1f} MB (limit {LIMIT_MB}); largest files: "
        + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in largest)
    )
    assert size_mb > 20  # the zoo is in it (a wrong path would measure nothing)
