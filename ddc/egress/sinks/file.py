"""File sink: appends records to `path` (length-prefixed like the TCP framing, lines, or bare)."""

from __future__ import annotations

import logging
import os
from typing import Any

from ddc.egress.sinks.base import Sink
from ddc.protocol.record import Record

log = logging.getLogger(__name__)


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
            if record.value is None:
                record.value = b""
            if self.framing == "length_prefixed":
                parts.append(len(record.value).to_bytes(4, "big"))
                parts.append(record.value)
            elif self.framing == "lines":
                parts.append(record.value)
                parts.append(b"\n")
            else:
                parts.append(record.value)
        try:
            if self.handle is None:
                self.start()
            self.handle.write(b"".join(parts))
            self.handle.flush()
            if self.config["fsync"]:
                os.fsync(self.handle.fileno())
        except OSError as exc:
            self.metrics.records_dropped.labels(reason="write_error").inc(len(records))
            self.metrics.sink_errors.inc()
            log.error(
                "file sink: writing %s failed (%s): %d records dropped",
                self.config["path"],
                exc,
                len(records),
            )
            self._close()  # reopened on the next batch

    def _close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError as exc:
                log.error("file sink: closing %s failed: %s", self.config["path"], exc)
            self.handle = None

    def stop(self, timeout: float) -> None:
        self._close()
