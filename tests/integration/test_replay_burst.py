"""A captured burst of packets sent again to a real egress (no authentication): delivered once.

ingress (FEC 32+8, 1472-byte packets) -> a relay in this test that forwards and records every
datagram -> egress -> TCP sink. Midway the relay sends 40 captured data packets (and the
parity among them) again from its own address, the pinned sender's: before the replay rules
the 32nd late packet resynced the egress onto the old seqs and the chunks after it were
delivered a second time.
"""

from __future__ import annotations

import socket
import threading

from ddc.protocol.wire import HEADER, MessageType
from devtools.harness import wait_until
from tests.integration.streams import Collector, indexes, make_record, send_tcp_records

DATA_KINDS = (MessageType.DATA_FIRST, MessageType.DATA)


class Relay(threading.Thread):
    """Forwards every datagram to the egress and keeps a copy; `send_again` replays copies."""

    def __init__(self, forward: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.forward = forward
        self.captured: list[bytes] = []
        self.lock = threading.Lock()
        self.running = True

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def run(self) -> None:
        while self.running:
            try:
                datagram = self.sock.recv(65535)
            except TimeoutError:
                continue
            with self.lock:
                self.captured.append(datagram)
                self.sock.sendto(datagram, self.forward)

    def send_again(self, datagrams: list[bytes]) -> None:
        with self.lock:  # in one piece: no genuine packet in between
            for datagram in datagrams:
                self.sock.sendto(datagram, self.forward)

    def stop(self) -> None:
        self.running = False
        self.join(2)
        self.sock.close()


def data_seq(datagram: bytes) -> int | None:
    kind, seq, _, _ = HEADER.unpack_from(datagram)
    return seq if kind in DATA_KINDS else None


def test_a_captured_burst_sent_again_is_delivered_once(pairs):
    transport = {"max_packet_size": 1472, "fec_data": 32, "fec_parity": 8}
    pair = pairs(source="tcp", sink="tcp", transport=transport)
    relay = Relay(("127.0.0.1", pair.link_port))
    pair.destination_port = relay.port
    collector = Collector("tcp", pair.sink_port)
    relay.start()
    collector.start()
    try:
        egress = pair.start_egress()
        pair.start_ingress()
        size = 4000  # 3 packets a record
        send_tcp_records(pair.source_port, (make_record(i, size) for i in range(200)), 10)
        wait_until(
            lambda: len(collector.records) == 200,
            30,
            message=lambda: f"first 200: {len(collector.records)}, {egress.metrics()}",
        )
        with relay.lock:
            captured = list(relay.captured)
        # data seqs 90..149 (20 records) and the parity packets among them
        start = next(i for i, d in enumerate(captured) if data_seq(d) == 90)
        end = next(i for i, d in enumerate(captured) if data_seq(d) == 150)
        burst = captured[start:end]
        assert sum(data_seq(d) is not None for d in burst) == 60
        relay.send_again(burst)
        send_tcp_records(pair.source_port, (make_record(i, size) for i in range(200, 400)), 10)
        wait_until(lambda: len(collector.records) >= 400, 30, message="the next 200")
        wait_until(
            lambda: egress.metrics().get("ddc_egress_chunks_delivered_total", 0) >= 400,
            10,
            message="the egress counted 400 chunks",
        )
        collector.stop()
        assert indexes(collector.records) == list(range(400))  # each record once, in order
        metrics = egress.metrics()
        assert metrics["ddc_egress_resyncs_total"] == 1
        assert metrics["ddc_egress_packets_late_total"] == 31
        # the 32nd late packet (seq 121) and the next are the end of a record: orphaned
        assert metrics['ddc_egress_chunks_aborted_total{reason="replayed"}'] == 9
        assert metrics["ddc_egress_packets_orphaned_total"] == 2
        assert metrics["ddc_egress_packets_lost_total"] == 0
    finally:
        collector.stop()
        relay.stop()
