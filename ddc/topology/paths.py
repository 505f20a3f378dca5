"""How file paths are shown in the checker's messages."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: Path | str) -> str:
    """Relative to the working directory when under it, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        relative = ".."
    return str(Path(path).absolute()) if relative.startswith("..") else relative
