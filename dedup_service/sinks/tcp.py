"""Sends each record's value over TCP with a 4-byte big-endian length prefix; reconnects on demand."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.sinks.base import Sink


class TcpSink(Sink):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(
                tuple(self.config["target"]), timeout=self.config["timeout"]
            )
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, records: list[Record]) -> None:
        host, port = self.config["target"]
        with self.lock:
            sent = 0
            try:
                sock = self._connect()
                for record in records:
                    value = record.value or b""
                    sock.sendall(struct.pack(">I", len(value)) + value)
                    sent += 1
            except OSError as exc:
                self._close()
                raise SinkFailed(f"TCP to {host}:{port}: {exc}", range(sent)) from exc

    def stop(self, timeout: float) -> None:
        with self.lock:
            self._close()
