"""TCP source: many concurrent connections, each a stream of 4-byte big-endian length-prefixed records."""

from __future__ import annotations

import logging
import socket
from typing import Any

from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from ddc.ingress.sources.base import Source, Submit
from ddc.metrics import IngressMetrics
from ddc.units import host_port

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
PREFIX = 4


class TcpSource(Source):
    def __init__(self, config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> None:
        super().__init__(config, submit, metrics)
        self.max_record_size = config["max_record_size"]
        self.pool = Pool(config["max_connections"])
        self.server: StreamServer | None = None
        self._stopped = Event()
        self._connections: set[socket.socket] = set()

    def start(self) -> None:
        self.server = StreamServer(self.config["listen"], self._connection, spawn=self.pool)
        self.server.init_socket()
        log.info("TCP source listening on %s:%s", *self.server.address[:2])

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None, "start() creates the server"
        return host_port(self.server.address)

    def run(self) -> None:
        server = self.server
        assert server is not None, "start() creates the server before run()"
        server.start()
        self._stopped.wait()
        # stop accepting, end every reader at its next recv; a submit in progress completes
        server.close()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self.pool.join(timeout=5.0)

    def _connection(self, conn: socket.socket, peer: tuple) -> None:
        log.info("TCP source: connection from %s:%s", *peer[:2])
        self._connections.add(conn)
        try:
            self._read_stream(conn, peer)
        except OSError as exc:
            self.metrics.source_errors.labels(kind="connection").inc()
            log.warning("TCP source: connection from %s:%s failed: %s", peer[0], peer[1], exc)
        finally:
            self._connections.discard(conn)
            conn.close()

    def _read_stream(self, conn: socket.socket, peer: tuple) -> None:
        pending = bytearray()
        skip = 0  # bytes of an oversized record still to discard
        while True:
            self.running.wait()
            data = conn.recv(READ_SIZE)
            if not data:
                break
            if skip:
                taken = min(skip, len(data))
                skip -= taken
                data = data[taken:]
                if skip:
                    continue  # still inside the oversized record
            pending += data
            records, consumed, skip = self._split(pending, peer)
            if consumed:
                del pending[:consumed]
            if records:
                self.metrics.records.inc(len(records))
                self.submit(records, None)
        if pending:
            self.metrics.source_errors.labels(kind="truncated").inc()
            self.metrics.records_dropped.labels(reason="truncated").inc()
            log.error(
                "TCP source: %s:%s closed inside a record (%d bytes of it received); dropped",
                peer[0],
                peer[1],
                len(pending),
            )
        log.info("TCP source: %s:%s closed", *peer[:2])

    def _split(self, pending: bytearray, peer: tuple) -> tuple[list[bytes], int, int]:
        """Complete records at the front of `pending`, bytes consumed, bytes left to skip."""
        records: list[bytes] = []
        pos = 0
        end = len(pending)
        view = memoryview(pending)
        try:
            while end - pos >= PREFIX:
                size = int.from_bytes(view[pos : pos + PREFIX], "big")
                if size > self.max_record_size:
                    self.metrics.records_dropped.labels(reason="oversized").inc()
                    log.error(
                        "TCP source: %s:%s sent a %d-byte record, over max_record_size %d; dropped",
                        peer[0],
                        peer[1],
                        size,
                        self.max_record_size,
                    )
                    available = min(size, end - pos - PREFIX)
                    if available < size:
                        return records, pos + PREFIX + available, size - available
                    pos += PREFIX + size
                    continue
                if end - pos - PREFIX < size:
                    break
                records.append(bytes(view[pos + PREFIX : pos + PREFIX + size]))
                pos += PREFIX + size
        finally:
            view.release()
        return records, pos, 0

    def stop(self) -> None:
        self.running.set()
        self._stopped.set()

    def close(self, timeout: float) -> None:
        if self.server is not None:
            self.server.stop(min(timeout, 1.0))
            self.server = None
