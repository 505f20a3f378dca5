"""FEC wired into the ingress transport and the egress receiver (driven directly, no sockets)."""

from __future__ import annotations

import random

from ddc.ingress.transport import Transport
from ddc.metrics import IngressMetrics
from ddc.protocol.fec import PARITY, PARITY_OVERHEAD, parse_parity
from ddc.protocol.wire import HEADER, MessageType

A = ("192.0.2.1", 4000)


class CapturingSocket:
    """Stands in for the transport's UdpSocket: keeps each datagram it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendmsg(self, buffers: list, address: tuple) -> int:
        datagram = b"".join(bytes(buffer) for buffer in buffers)
        self.sent.append(datagram)
        return len(datagram)


def make_transport(k: int = 0, m: int = 0, interleave: int = 1, linger_ms: float = 5.0, mps=1472):
    config = {
        "destination": A,
        "bind": ("127.0.0.1", 0),
        "max_packet_size": mps,
        "rate": None,
        "send_delay_ms": 0,
        "startup_burst": 2,
        "shutdown_burst": 2,
        "fec_data": k,
        "fec_parity": m,
        "fec_interleave": interleave,
        "fec_linger_ms": linger_ms,
    }
    transport = Transport(config, IngressMetrics())
    udp = CapturingSocket()
    transport.udp, transport.sockaddr = udp, A
    return transport, udp


def kinds(sent: list[bytes]) -> list[int]:
    return [datagram[0] for datagram in sent]


def random_chunks(count: int, seed: int = 1, largest: int = 8192) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(0, largest)) for _ in range(count)]


def test_fec_off_sends_exactly_the_v1_bytes_and_k_without_m_is_off():
    chunks = random_chunks(50)
    sent = []
    for k in (0, 32):
        transport, udp = make_transport(k, 0)
        assert transport.fec is None and transport.payload_max == 1472 - 9
        transport.send_startup()
        for chunk in chunks:
            transport.send_chunk(chunk)
        transport.send_shutdown()
        sent.append(udp.sent)
    assert sent[0] == sent[1]
    assert PARITY not in kinds(sent[0])


def test_parity_follows_each_full_group_consumes_no_seq_and_fits_the_packet_size():
    transport, udp = make_transport(4, 2, linger_ms=1e6)
    assert transport.payload_max == 1472 - PARITY_OVERHEAD - 9
    transport.send_startup()
    udp.sent.clear()
    chunks = [b"x" * 3000, b"y" * 10, b"z" * 1448, b"w"]  # 3 + 1 + 1 + 1 data packets
    for chunk in chunks:
        assert transport.send_chunk(chunk)
    assert kinds(udp.sent) == [3, 4, 4, 3, PARITY, PARITY, 3, 3]
    assert transport.fec_wait() is not None  # the second group is open
    transport.send_shutdown()
    assert kinds(udp.sent)[8:] == [PARITY, PARITY, MessageType.SHUTDOWN, MessageType.SHUTDOWN]
    data = [d for d in udp.sent if d[0] in (3, 4)]
    assert [HEADER.unpack_from(d)[1] for d in data] == list(range(6))
    assert HEADER.unpack_from(udp.sent[-1])[1] == 6  # Shutdown announces seq 6: parity took none
    assert max(len(d) for d in udp.sent) <= 1472
    first, second = (parse_parity(udp.sent[i]) for i in (4, 8))
    assert (first.first, first.k, first.m) == (0, 4, 2)
    assert (second.first, second.k, second.m) == (4, 2, 2)  # closed early with 2 data packets
    assert transport.parity_packets == 4 and transport.data_packets == 6
    assert transport.fec_wait() is None


def test_linger_wait_counts_down_and_startup_drops_the_open_group():
    transport, udp = make_transport(32, 8, linger_ms=50)
    transport.send_startup()
    assert transport.fec_wait() is None
    transport.send_chunk(b"a")
    wait = transport.fec_wait()
    assert wait is not None and 0 < wait <= 0.05
    transport.flush_fec()
    assert kinds(udp.sent)[-8:] == [PARITY] * 8 and transport.fec_wait() is None
    transport.send_chunk(b"b")
    transport.send_startup()  # a new sequence: the open group is gone, not flushed
    assert transport.fec_wait() is None and transport.parity_packets == 8
