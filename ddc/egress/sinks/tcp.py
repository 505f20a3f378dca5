"""TCP sink: records as 4-byte big-endian length-prefixed frames, reconnecting on failure.

A writer greenlet owns the connection; send() only queues (the deliverer's window bounds what
is queued; `buffer_max_bytes` is a second bound send() waits on). A batch is settled once
sendall() returned: written to the socket, which is NOT an end-to-end acknowledgement (what the
kernel still held when the connection broke is lost, not replayed). A batch whose write failed
is written again on the next connection (at-least-once). The writer runs under the egress's
supervision: if it fails it is restarted (the batch it held is kept) and /healthz says
"sink_ok": false until the restart proved stable.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import gevent
from gevent import socket as gsocket

from ddc.egress.sinks.base import Done, TargetSink
from ddc.egress.sinks.framing import framed
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record
from ddc.queues import STOP, CostQueue, finish

log = logging.getLogger(__name__)

WRITER = "tcp-sink"  # the supervised writer greenlet's name
CONNECT_TIMEOUT = 10.0


class TcpSink(TargetSink):
    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        self.buffer = CostQueue(config["buffer_max_bytes"])
        self.conn: socket.socket | None = None
        self.connected = False
        self._pending: tuple[bytes, Done] | None = None  # the batch being written

    def start(self) -> None:
        self.owner.supervise(self._write_loop, name=WRITER)

    def send(self, records: list[Record], done: Done) -> None:
        data = framed(records)
        self.buffer.put((data, done), len(data))

    def _connect(self) -> socket.socket:
        interval = self.config["reconnect_interval"]
        failures = 0
        while True:
            try:
                conn = gsocket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
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
        while True:
            if self._pending is None:
                item = self.buffer.get()
                if item is STOP:
                    return
                self._pending = item
            if self.conn is None:
                self.conn = self._connect()
                self.connected = True
            try:
                data, done = self._pending
                self.conn.sendall(data)
                self._pending = None
                done()
            except OSError as exc:
                log.error("TCP sink lost %s:%s: %s; reconnecting", *self.target, exc)
                self.metrics.sink_errors.inc()
                self._close()

    def _close(self) -> None:
        conn, self.conn, self.connected = self.conn, None, False
        if conn is not None:
            conn.close()

    def stop(self, timeout: float) -> None:
        writer = self.owner.supervised(WRITER)
        if not finish(self.buffer, writer, timeout) and writer is not None:
            writer.kill(block=True, timeout=1)
        batches = len(list(self.buffer.drain())) + (self._pending is not None)
        self._pending = None
        if batches:
            log.info("TCP sink stopped with %d batch(es) not written", batches)
        self._close()

    def health(self) -> dict[str, Any]:
        return {
            **self.supervised_health(self.connected, WRITER),
            "sink_buffered_bytes": self.buffer.cost,
        }
