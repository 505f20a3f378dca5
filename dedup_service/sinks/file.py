"""Appends each record's value to a file: length_prefixed (4-byte big-endian) | lines | none."""

from __future__ import annotations

import os
import struct
import threading
from typing import Any, BinaryIO

from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.sinks.base import Sink


def frame(value: bytes, framing: str) -> bytes:
    if framing == "length_prefixed":
        return struct.pack(">I", len(value)) + value
    if framing == "lines":
        return value + b"\n"
    return value


class FileSink(Sink):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.lock = threading.Lock()
        self.handle: BinaryIO | None = None

    def start(self) -> None:
        path = self.config["path"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.handle = open(path, "ab")

    def send(self, records: list[Record]) -> None:
        framing = self.config["framing"]
        data = b"".join(frame(record.value or b"", framing) for record in records)
        with self.lock:
            try:
                assert self.handle is not None, "sink not started"
                self.handle.write(data)
                self.handle.flush()
                if self.config["fsync"]:
                    os.fsync(self.handle.fileno())
            except OSError as exc:
                raise SinkFailed(f"writing {self.config['path']}: {exc}") from exc

    def stop(self, timeout: float) -> None:
        with self.lock:
            if self.handle is not None:
                self.handle.close()
                self.handle = None
