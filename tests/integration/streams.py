"""Test traffic: numbered, self-checking records, and plain socket peers for sources and sinks."""

from __future__ import annotations

import hashlib
import math
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ddc.netio import set_receive_buffer
from dedup_service.embedded import poll_until
from devtools.harness import Daemon, wait_progress, wait_until

ID = struct.Struct(">Q")


def make_record(index: int, size: int) -> bytes:
    """index (8 bytes) + deterministic filler; any size ≥ 0 (records under 8 bytes carry no id)."""
    body = ID.pack(index) + hashlib.sha256(ID.pack(index)).digest() * (size // 32 + 1)
    return body[:size]


def record_ok(data: bytes, expected_size: int | None = None) -> bool:
    if len(data) < ID.size:
        return data == bytes(len(data))  # the high bytes of a small big-endian index
    index = ID.unpack_from(data)[0]
    return data == make_record(index, len(data)) and (
        expected_size is None or len(data) == expected_size
    )


def indexes(records: list[bytes]) -> list[int]:
    """The index each record carries in its first 8 bytes."""
    return [ID.unpack_from(record)[0] for record in records]


def log_uniform_sizes(count: int, max_size: int, seed: int) -> list[int]:
    """Sizes from 0 to max_size, spread evenly over orders of magnitude, both ends included."""
    rng = random.Random(seed)
    sizes = [0, 1, max_size, max_size - 1]
    while len(sizes) < count:
        sizes.append(min(max_size, int(2 ** rng.uniform(0, max_size.bit_length()))))
    rng.shuffle(sizes)
    return sizes[:count]


def read_length_prefixed(path: Path) -> list[bytes]:
    """The records of a file sink's output (split_length_prefixed)."""
    return split_length_prefixed(path.read_bytes() if path.exists() else b"")


def join_length_prefixed(records: list[bytes]) -> bytes:
    """What a TCP source reads (split_length_prefixed's inverse)."""
    return b"".join(len(data).to_bytes(4, "big") + data for data in records)


def split_length_prefixed(data: bytes) -> list[bytes]:
    """The records of length-prefixed bytes (each a 4-byte big-endian length, then the bytes);
    a length still being written at the end is not a record yet."""
    records, offset = [], 0
    while offset + 4 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        records.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return records


def udp_receiver(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_receive_buffer(sock, 64 * 1024 * 1024)
    sock.bind(("127.0.0.1", port))
    return sock


def drain(sock: socket.socket, expect: int | None = None, idle: float = 0.5) -> list[bytes]:
    """The datagrams `sock` receives until `expect` of them came or none came for `idle` s."""
    sock.settimeout(idle)
    got: list[bytes] = []
    try:
        while expect is None or len(got) < expect:
            got.append(sock.recv(65536))
    except TimeoutError:
        pass
    return got


def datagrams_until(sock: socket.socket, stop: threading.Event) -> Iterator[bytes]:
    """The datagrams `sock` (which has a timeout) receives until `stop` is set."""
    while not stop.is_set():
        try:
            yield sock.recv(65536)
        except TimeoutError:
            continue


class Collector(threading.Thread):
    """Collects what a sink delivers (UDP datagrams or length-prefixed TCP frames) in a thread."""

    def __init__(self, kind: str, port: int) -> None:
        super().__init__(daemon=True)
        self.kind = kind
        self.records: list[bytes] = []
        self._stopping = threading.Event()
        if kind == "udp":
            self.sock = udp_receiver(port)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", port))
            self.sock.listen(8)
        self.sock.settimeout(0.2)

    def run(self) -> None:
        if self.kind == "udp":
            for data in datagrams_until(self.sock, self._stopping):
                self.records.append(data)
        else:
            while not self._stopping.is_set():
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                self._read_frames(conn)

    def _read_frames(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        pending = bytearray()
        while not self._stopping.is_set():
            try:
                data = conn.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                break
            pending += data
            pos = 0
            while len(pending) - pos >= 4:
                size = int.from_bytes(pending[pos : pos + 4], "big")
                if len(pending) - pos - 4 < size:
                    break
                self.records.append(bytes(pending[pos + 4 : pos + 4 + size]))
                pos += 4 + size
            del pending[:pos]
        conn.close()

    def wait_for(
        self, count: int, timeout: float, quiet: float = 1.0, settle: float = 0.2
    ) -> list[bytes]:
        """Until `count` records arrived: for `timeout` s, then for as long as they keep
        arriving (`quiet` s without one ends it); then `settle` s more so that a surplus (a
        duplicate) shows too. The records, for the caller to judge."""
        if not poll_until(lambda: len(self.records) >= count, timeout):
            wait_progress(lambda: len(self.records), lambda n: n >= count, math.inf, quiet)
        time.sleep(settle)
        return self.records

    def stop(self) -> None:
        self._stopping.set()
        self.join(2)
        self.sock.close()


def send_tcp_records(port: int, records, pause_every: int = 0) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for index, data in enumerate(records):
            conn.sendall(join_length_prefixed([data]))
            if pause_every and index % pause_every == pause_every - 1:
                time.sleep(0.001)


def varied_sizes(count: int) -> list[int]:
    """`count` record sizes of 100..7,099 bytes: 1..5 packets of 1472 bytes, mixed."""
    return [100 + (i * 1913) % 7000 for i in range(count)]


def send_sized_records(port: int, sizes: list[int], ingress: Daemon) -> None:
    """Records 0.. of `sizes` into the TCP source at `port`, paced; returns once `ingress`
    counted every one of them as a chunk sent."""
    send_tcp_records(port, (make_record(i, s) for i, s in enumerate(sizes)), pause_every=50)
    wait_until(
        lambda: ingress.metrics()["ddc_ingress_chunks_sent_total"] == len(sizes), 60, message="sent"
    )


def send_udp(port: int, datagrams) -> None:
    """Unpaced: for a few datagrams only (more would overflow the ingress's socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            sock.sendto(data, ("127.0.0.1", port))


def send_udp_paced(port: int, datagrams, bytes_per_second: float) -> None:
    """Sends at about `bytes_per_second` so the ingress's own source socket never overflows."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    sent = 0
    for data in datagrams:
        sock.sendto(data, ("127.0.0.1", port))
        sent += len(data) + 28
        ahead = sent / bytes_per_second - (time.monotonic() - start)
        if ahead > 0.002:
            time.sleep(ahead)
    sock.close()
