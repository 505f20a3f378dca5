"""File sink: appends records to `path` (length-prefixed like the TCP framing, lines, or bare)."""

from __future__ import annotations

import os
from typing import Any

from ddc.egress.sinks.base import Sink
from ddc.protocol.record import Record


class FileSink(Sink):
    accepts_views = True

    def __init__(self, config: dict[str, Any], metrics: Any) -> None:
        super().__init__(config, metrics)
        self.framing = config["framing"]
        self.handle = None

    def start(self) -> None:
        self.handle = open(self.config["path"], "ab")  # noqa: SIM115 - held open for the daemon's life

    def send(self, records: list[Record]) -> None:
        parts = []
        for record in records:
            if self.framing == "length_prefixed":
                parts.append(len(record.value).to_bytes(4, "big"))
                parts.append(record.value)
            elif self.framing == "lines":
                parts.append(record.value)
                parts.append(b"\n")
            else:
                parts.append(record.value)
        self.handle.write(b"".join(parts))
        self.handle.flush()
        if self.config["fsync"]:
            os.fsync(self.handle.fileno())

    def stop(self, timeout: float) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
