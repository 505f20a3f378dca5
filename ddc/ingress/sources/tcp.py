"""TCP source: many concurrent connections, each a stream of 4-byte big-endian length-prefixed records.

Memory: complete records go to the pipeline (bounded by its queue); what the source itself holds
is the unfinished record of each connection. Their total is bounded by `max_pending_bytes`: a
connection whose unfinished record would take the total past it is closed, that partial record
dropped and counted (`records_dropped{reason="pending_limit"}`), and logged; the sender may
reconnect and send it again. The other connections are not held back.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from ddc.ingress.sources.base import Source, Submit
from ddc.logs import ThrottledLog
from ddc.metrics import IngressMetrics
from ddc.units import bound_address

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
PREFIX = 4
REFUSAL_LOG_INTERVAL = 5.0


class TcpSource(Source):
    def __init__(self, config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> None:
        super().__init__(config, submit, metrics)
        self.max_record_size = config["max_record_size"]
        self.max_pending = config["max_pending_bytes"]
        self.pending_bytes = 0  # held by the unfinished records of all connections
        self._refusal_log = ThrottledLog(log, REFUSAL_LOG_INTERVAL)
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
        return bound_address(self.server)

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
        held = [0]  # this connection's share of pending_bytes
        try:
            self._read_records(conn, peer, pending, held)
        finally:
            self.pending_bytes -= held[0]

    def _read_records(
        self, conn: socket.socket, peer: tuple, pending: bytearray, held: list[int]
    ) -> None:
        skip = 0  # bytes of an oversized record still to discard
        while True:
            self.running.wait()
            data = conn.recv(READ_SIZE)
            if not data:
                break
            if not self.running.is_set():  # paused while waiting: held here, the rest in TCP
                self.running.wait()
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
            unfinished = max(0, len(pending) - PREFIX)  # the record's bytes so far
            if unfinished != held[0] and not self._hold(unfinished, held, peer):
                return  # refused: the connection is closed, its partial record dropped
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

    def _hold(self, size: int, held: list[int], peer: tuple) -> bool:
        """Account `size` bytes of unfinished record for a connection holding held[0]; False
        (dropped, counted, logged) when that would take the total past max_pending_bytes."""
        total = self.pending_bytes - held[0] + size
        if size <= held[0] or total <= self.max_pending:
            self.pending_bytes = total
            held[0] = size
            return True
        self.metrics.records_dropped.labels(reason="pending_limit").inc()
        self._refusal_log(
            "pending_limit",
            "TCP source: closed %s:%s: its unfinished record (%d bytes so far) would take the "
            "bytes held by unfinished records to %d, over max_pending_bytes %d; dropped",
            peer[0],
            peer[1],
            size,
            total,
            self.max_pending,
        )
        return False

    def health(self) -> dict[str, Any]:
        self.metrics.source_pending_bytes.set(self.pending_bytes)
        return {"source_pending_bytes": self.pending_bytes}

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
