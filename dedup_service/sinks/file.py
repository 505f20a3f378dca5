"""Appends each record's value to a file: length_prefixed (4-byte big-endian) | lines | none.

With `write_ids = true` (length_prefixed only) each record is two frames: its dedup id (the
`ddc-dedup-id` header the forwarder put on it), then its value. A record forwarded again after
a crash between forward and commit then carries the same id, and a reader skips it
(`read_with_ids`; docs/dedup.md "Sinks").
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

from ddc.egress.sinks.framing import framed
from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.keys import IDEMPOTENCY_HEADER, header_value
from dedup_service.sinks.base import Sink


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
        if self.config.get("write_ids"):  # each id framed as a value of its own, before it
            records = [
                part for record in records for part in (Record(idempotency_key(record)), record)
            ]
        data = framed(records, self.config["framing"])
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


def idempotency_key(record: Record) -> bytes:
    value = header_value(record, IDEMPOTENCY_HEADER)
    if value is not None:
        return value
    raise SinkFailed(f"a record without its {IDEMPOTENCY_HEADER} header reached the file sink")


def read_with_ids(data: bytes) -> Iterator[tuple[bytes, bytes, bool]]:
    """(id, value, repeat) of each record of a `write_ids` file, in order; `repeat` is true for
    an id seen before in it (a re-forward after a crash: what a reader skips)."""
    seen: set[bytes] = set()
    offset = 0
    while offset < len(data):
        frames = []
        for _ in range(2):
            (size,) = struct.unpack_from(">I", data, offset)
            frames.append(data[offset + 4 : offset + 4 + size])
            offset += 4 + size
        ident, value = frames
        yield ident, value, ident in seen
        seen.add(ident)
