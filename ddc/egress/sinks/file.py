"""File sink: appends records to `path` (length-prefixed like the TCP framing, lines, or bare)."""

from __future__ import annotations

import logging
import os
from typing import Any, BinaryIO

from ddc.egress.sinks.base import Sink
from ddc.egress.sinks.framing import framed
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record

log = logging.getLogger(__name__)


class FileSink(Sink):
    accepts_views = True

    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        self.framing = config["framing"]
        self.handle: BinaryIO | None = None  # open for the daemon's life (reopened after an error)

    def start(self) -> None:
        self._open()

    def _open(self) -> BinaryIO:
        self.handle = open(self.config["path"], "ab")
        return self.handle

    def send(self, records: list[Record]) -> None:
        data = framed(records, self.framing)
        try:
            handle = self.handle or self._open()
            handle.write(data)
            handle.flush()
            if self.config["fsync"]:
                os.fsync(handle.fileno())
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
