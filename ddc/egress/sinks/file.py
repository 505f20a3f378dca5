"""File sink: appends records to `path` (length-prefixed like the TCP framing, lines, or bare).

A batch is settled once written (and fsynced with `fsync = true`). A failed write (disk full,
permissions) is retried every RETRY_INTERVAL seconds on a reopened file, the records staying in
the spool meanwhile; a retried batch may have been partly written before (at-least-once).
"""

from __future__ import annotations

import logging
import os
from typing import Any, BinaryIO

import gevent

from ddc.egress.sinks.base import Done, Sink
from ddc.egress.sinks.framing import framed
from ddc.logs import ThrottledLog
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record

log = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0
LOG_INTERVAL = 10.0


class FileSink(Sink):
    accepts_views = True

    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        self.framing = config["framing"]
        self.handle: BinaryIO | None = None  # open for the daemon's life (reopened after an error)
        self.ok = True
        self.error: str | None = None
        self._log = ThrottledLog(log, LOG_INTERVAL)

    def start(self) -> None:
        try:
            self._open()
        except OSError as exc:  # retried by send(); /healthz shows it meanwhile
            self._failed(exc)

    def _open(self) -> BinaryIO:
        self.handle = open(self.config["path"], "ab")
        return self.handle

    def send(self, records: list[Record], done: Done) -> None:
        data = framed(records, self.framing)
        while True:
            try:
                handle = self.handle or self._open()
                handle.write(data)
                handle.flush()
                if self.config["fsync"]:
                    os.fsync(handle.fileno())
            except OSError as exc:
                self._failed(exc)
                self._close()  # reopened on the retry
                gevent.sleep(RETRY_INTERVAL)
                continue
            if not self.ok:
                log.info("file sink: writing %s again", self.config["path"])
                self.ok, self.error = True, None
            done()
            return

    def _failed(self, exc: OSError) -> None:
        self.ok, self.error = False, str(exc)
        self.metrics.sink_errors.inc()
        self._log(
            "write",
            "file sink: writing %s failed (%s); records wait in the spool, retrying every %.0fs",
            self.config["path"],
            exc,
            RETRY_INTERVAL,
        )

    def _close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError as exc:
                log.error("file sink: closing %s failed: %s", self.config["path"], exc)
            self.handle = None

    def stop(self, timeout: float) -> None:
        self._close()

    def health(self) -> dict[str, Any]:
        return {"sink_ok": self.ok, "sink_error": self.error}
