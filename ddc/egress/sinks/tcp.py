"""TCP sink: records as 4-byte big-endian length-prefixed frames, reconnecting on failure.

A writer greenlet owns the connection; send() only queues. While the target is down frames
wait in a buffer of `buffer_max_bytes`; beyond it they are dropped and counted. A batch whose
write failed is written again on the next connection (at-least-once).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import gevent
from gevent import socket as gsocket

from ddc.egress.sinks.base import Sink
from ddc.protocol.record import Record
from ddc.queues import CostQueue

log = logging.getLogger(__name__)

STOP = object()


def frame(records: list[Record]) -> bytes:
    parts = []
    for record in records:
        value = record.value or b""
        parts.append(len(value).to_bytes(4, "big"))
        parts.append(value)
    return b"".join(parts)


class TcpSink(Sink):
    accepts_views = True

    def __init__(self, config: dict[str, Any], metrics: Any) -> None:
        super().__init__(config, metrics)
        self.target = config["target"]
        self.buffer = CostQueue(config["buffer_max_bytes"])
        self.conn: socket.socket | None = None
        self.connected = False
        self._writer: gevent.Greenlet | None = None
        self._dropped = metrics.records_dropped.labels(reason="buffer_full")

    def start(self) -> None:
        self._writer = self.owner.spawn(self._write_loop, name="tcp-sink")

    def send(self, records: list[Record]) -> None:
        data = frame(records)
        if not self.buffer.put_nowait((data, len(records)), len(data)):
            self._dropped.inc(len(records))
            log.error(
                "TCP sink buffer full (%d bytes, target %s:%s down?): dropped %d records",
                self.buffer.cost, *self.target, len(records),
            )  # fmt: skip

    def _connect(self) -> socket.socket:
        interval = self.config["reconnect_interval"]
        failures = 0
        while True:
            try:
                conn = gsocket.create_connection(self.target, timeout=10)
                conn.settimeout(None)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if failures:
                    log.info("TCP sink reconnected to %s:%s", *self.target)
                return conn
            except OSError as exc:
                if failures == 0:
                    log.error("TCP sink cannot connect to %s:%s: %s (retrying)", *self.target, exc)
                failures += 1
                self.metrics.sink_errors.inc()
                gevent.sleep(interval)

    def _write_loop(self) -> None:
        pending = None
        while True:
            if pending is None:
                pending = self.buffer.get()
                if pending is STOP:
                    return
            if self.conn is None:
                self.conn = self._connect()
                self.connected = True
            try:
                self.conn.sendall(pending[0])
                pending = None
            except OSError as exc:
                log.error("TCP sink lost %s:%s: %s; reconnecting", *self.target, exc)
                self.metrics.sink_errors.inc()
                self.conn.close()
                self.conn = None
                self.connected = False

    def stop(self, timeout: float) -> None:
        self.buffer.put(STOP, 1, timeout=timeout)
        if self._writer is not None:
            self._writer.join(timeout)
            if not self._writer.dead:
                left = len(self.buffer)
                log.error("TCP sink stopped with %d batches not written", left)
                self._writer.kill(block=True, timeout=1)
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def health(self) -> dict[str, Any]:
        return {"sink_ok": self.connected, "sink_buffered_bytes": self.buffer.cost}
