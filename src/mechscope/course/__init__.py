"""Course mode: exercises the student writes, checks that teach, two editions of the notebooks.

- :func:`check` runs a student's function against the reference on several cases and prints
  one paragraph: a pass, "not implemented yet", or the first failing case with the likely
  mistake. :func:`use` then hands the later cells the student's function or the reference.
- :func:`build` (``python -m mechscope.course build`` / ``make course``) writes the student and
  instructor (nbgrader) editions of ``notebooks/``.
"""

from __future__ import annotations

from .build import build, instructor_edition, student_edition
from .check import CheckResult, check, use

__all__ = ["CheckResult", "build", "check", "instructor_edition", "student_edition", "use"]
