"""Building the ddc wheel from a directory and opening it (the wheel and Dockerfile tests)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path


def pip_wheel(
    source: Path, out: Path, *pip_options: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`pip wheel --no-deps -q` of the project in `source` into `out`; its result, not raised."""
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(out)]
    return subprocess.run(
        [*argv, *pip_options, str(source)], capture_output=True, text=True, timeout=timeout
    )


def built_wheel(out: Path) -> zipfile.ZipFile:
    """The one ddc wheel in `out`, open for reading."""
    (wheel,) = out.glob("ddc-*.whl")
    return zipfile.ZipFile(wheel)
