"""Sends each record's value as one UDP datagram (acknowledged = handed to the kernel)."""

from __future__ import annotations

import socket
from typing import Any

from ddc.netio import set_send_buffer
from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.sinks.base import Sink


class UdpSink(Sink):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.sock: socket.socket | None = None

    def start(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        set_send_buffer(self.sock, self.config["send_buffer"])  # warns when the kernel caps it

    def send(self, records: list[Record]) -> None:
        assert self.sock is not None, "sink not started"
        target = tuple(self.config["target"])
        for index, record in enumerate(records):
            try:
                self.sock.sendto(record.value or b"", target)
            except OSError as exc:
                raise SinkFailed(f"UDP to {target[0]}:{target[1]}: {exc}", range(index)) from exc

    def stop(self, timeout: float) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
