"""The egress's store-and-forward spool between reassembly and the sink (docs/spool.md)."""

from __future__ import annotations

import os
from typing import Any

from ddc.egress.spool.base import Item, Spool
from ddc.egress.spool.disk import DiskSpool
from ddc.egress.spool.memory import MemorySpool
from ddc.egress.spool.segments import SpoolError

__all__ = ["DiskSpool", "Item", "MemorySpool", "Spool", "SpoolError", "open_spool"]


def spool_dir(config: dict[str, Any], name: str) -> str:
    """Where an egress called `name` keeps its spool: `<dir>/<name>` ("" = in memory)."""
    safe = name.replace(os.sep, "_").lstrip(".") or "ddc"
    return os.path.join(config["dir"], safe) if config["dir"] else ""


def open_spool(config: dict[str, Any], name: str) -> Spool:
    """The spool `[egress.spool]` describes; SpoolError when its directory is unusable."""
    directory = spool_dir(config, name)
    if not directory:
        return MemorySpool(config["max_bytes"], config["when_full"])
    return DiskSpool(directory, config["max_bytes"], config["when_full"], config["fsync_interval"])
