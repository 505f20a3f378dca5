"""The dedup service's UDP sink on loopback: one datagram per record, buffer sized by ddc.netio."""

from __future__ import annotations

import os
import socket

from ddc.config.schemas import UdpSinkSchema
from ddc.protocol.record import Record
from dedup_service.sinks.udp import UdpSink


def test_each_record_is_one_datagram_and_the_send_buffer_is_sized():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    sink = UdpSink(
        UdpSinkSchema().load({"type": "udp", "target": f"127.0.0.1:{port}", "send_buffer": "16MiB"})
    )
    try:
        sink.start()
        assert sink.sock is not None
        # forced past net.core.wmem_max as root, else capped by it
        granted = sink.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        wanted = 16 * 1024**2
        assert granted >= (wanted if os.geteuid() == 0 else min(wanted, wmem_max()))
        sink.send([Record(b"one"), Record(None), Record(b"three")])
        assert [receiver.recv(100) for _ in range(3)] == [b"one", b"", b"three"]
    finally:
        sink.stop(1.0)
        receiver.close()
    assert sink.sock is None


def wmem_max() -> int:
    try:
        with open("/proc/sys/net/core/wmem_max") as handle:
            return int(handle.read())
    except OSError:
        return 0
