"""Real `ddc egress` / `ddc ingress` processes against the independent v1 peer (tests/interop)."""

from __future__ import annotations

import random
import socket
import time
from contextlib import contextmanager

import pytest

from ddc.netio import set_receive_buffer
from dedup_service.embedded import free_port
from devtools.harness import Daemon, wait_until, write_toml
from tests.interop.v1peer import (
    DATA,
    DATA_FIRST,
    HEARTBEAT,
    SHUTDOWN,
    STARTUP,
    Decoder,
    Encoder,
    parse,
)

STARTUP_BURST = 20


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_receive_buffer(sock, 8 * 1024**2)
    sock.bind(("127.0.0.1", 0))
    return sock


def receive(sock: socket.socket, count: int, timeout: float = 10.0) -> list[bytes]:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            break
    return got


@contextmanager
def udp_egress(tmp_path, name: str, transport: dict, sections: dict | None = None):
    """A real egress named `name`: the link on a UDP port with `transport`'s options, a UDP sink
    to a test socket and any further config `sections`; yields (daemon, link address, sink)."""
    sink = udp_socket()
    link_port, http_port = free_port(socket.SOCK_DGRAM), free_port()
    config = write_toml(
        tmp_path / "egress.toml",
        {
            "egress": {"name": name, "http_listen": f"127.0.0.1:{http_port}"},
            "egress.transport": {"listen": f"127.0.0.1:{link_port}", **transport},
            "egress.sink": {"type": "udp", "target": f"127.0.0.1:{sink.getsockname()[1]}"},
            **(sections or {}),
        },
    )
    daemon = Daemon("egress", config, http_port, tmp_path / "egress.log").start()
    try:
        yield daemon, ("127.0.0.1", link_port), sink
    finally:
        daemon.stop()
        sink.close()


@pytest.fixture
def egress(tmp_path):
    """A real egress: v1 on a UDP port, raw envelope, UDP sink to a test socket."""
    with udp_egress(tmp_path, "interop", {"envelope": "raw", "heartbeat_timeout": 5.0}) as running:
        yield running


def send_paced(sock: socket.socket, target, datagrams: list[bytes]) -> None:
    for index, datagram in enumerate(datagrams):
        sock.sendto(datagram, target)
        if index % 50 == 49:
            time.sleep(0.001)


def test_chunks_crafted_by_the_independent_peer_are_delivered_byte_identical(egress):
    daemon, link, sink = egress
    rng = random.Random(1)
    # (chunk size, max_packet_size the peer fragments it with): empty, one byte, exactly one
    # packet, one byte over, and multi-packet chunks up to the largest UDP datagram
    plan = [(0, 1472), (1, 1472), (1463, 1472), (1464, 1472), (9000, 1472), (60_000, 1472)]
    plan += [(65_507, 1472), (65_507, 65_507), (30_000, 64), (200, 65_507)]
    chunks = [rng.randbytes(size) for size, _ in plan]
    encoder = Encoder()
    datagrams = encoder.startup(STARTUP_BURST)
    for chunk, (_, max_packet_size) in zip(chunks, plan, strict=True):
        encoder.payload_max = max_packet_size - 9
        datagrams += encoder.chunk(chunk)
    datagrams.append(encoder.heartbeat())
    sender = udp_socket()
    try:
        send_paced(sender, link, datagrams)
        got = receive(sink, len(chunks))
        assert [len(d) for d in got] == [len(c) for c in chunks]
        assert got == chunks
        metrics = daemon.metrics()
        assert metrics["ddc_egress_packets_lost_total"] == 0
        assert metrics.get("ddc_egress_malformed_packets_total", 0) == 0
        assert metrics["ddc_egress_chunks_delivered_total"] == len(chunks)
        assert daemon.health()["link_up"] is True

        # a packet the peer "loses": that chunk is aborted, one packet counted, the next one delivered
        encoder.payload_max = 1472 - 9
        broken = encoder.chunk(b"L" * 5000)  # 4 packets of at most 1463 payload bytes
        assert len(broken) == 4
        after = encoder.chunk(b"after the loss")
        send_paced(sender, link, broken[:1] + broken[2:] + after + [encoder.heartbeat()])
        assert receive(sink, 1) == [b"after the loss"]
        metrics = daemon.metrics()
        assert metrics["ddc_egress_packets_lost_total"] == 1
        assert metrics.get("ddc_egress_chunks_aborted_total", 0) >= 1
        assert metrics["ddc_egress_chunks_delivered_total"] == len(chunks) + 1

        # Shutdown: the egress stays up and waits; a new StartUp resumes at seq 0
        send_paced(sender, link, encoder.shutdown(5))
        wait_until(
            lambda: daemon.health()["link_up"] is False, 5, message="link down after Shutdown"
        )
        restarted = Encoder(1472)
        send_paced(sender, link, restarted.startup(STARTUP_BURST) + restarted.chunk(b"resumed"))
        assert receive(sink, 1) == [b"resumed"]
        wait_until(lambda: daemon.health()["link_up"] is True, 5, message="link up after StartUp")
        assert daemon.metrics()["ddc_egress_packets_lost_total"] == 1
    finally:
        sender.close()
    assert daemon.process.poll() is None


def test_what_the_ingress_emits_decodes_under_the_independent_peer(tmp_path):
    capture = udp_socket()
    source_port, http_port = free_port(socket.SOCK_DGRAM), free_port()
    config = write_toml(
        tmp_path / "ingress.toml",
        {
            "ingress": {"name": "interop", "http_listen": f"127.0.0.1:{http_port}"},
            "ingress.source": {"type": "udp", "listen": f"127.0.0.1:{source_port}"},
            "ingress.transport": {
                "destination": f"127.0.0.1:{capture.getsockname()[1]}",
                "envelope": "raw",
                "max_packet_size": 1472,
                "heartbeat_interval": 0.2,
                "startup_burst": STARTUP_BURST,
            },
        },
    )
    rng = random.Random(2)
    records = [rng.randbytes(size) for size in (1, 100, 0, 1463, 1464, 9000, 65_507, 30_000, 7)]
    daemon = Daemon("ingress", config, http_port, tmp_path / "ingress.log").start()
    datagrams: list[bytes] = []
    decoder = Decoder()
    sender = udp_socket()
    try:
        capture.settimeout(5)
        for record in records:
            sender.sendto(record, ("127.0.0.1", source_port))
            time.sleep(0.01)

        def take(until) -> None:
            deadline = time.monotonic() + 10
            while not until() and time.monotonic() < deadline:
                datagram = capture.recv(65536)
                datagrams.append(datagram)
                decoder.feed(datagram)

        take(lambda: len(decoder.chunks) == len(records))
        heartbeats_before = len(decoder.heartbeats)
        take(lambda: len(decoder.heartbeats) >= heartbeats_before + 2)
        assert daemon.stop() == 0
        capture.settimeout(0.5)
        try:
            take(lambda: False)
        except TimeoutError:
            pass
    finally:
        daemon.stop()
        sender.close()
        capture.close()

    packets = [parse(d) for d in datagrams]
    assert [p.kind for p in packets[:STARTUP_BURST]] == [STARTUP] * STARTUP_BURST
    assert all(p.seq == 0 and p.payload == b"" for p in packets[:STARTUP_BURST])
    assert STARTUP not in [p.kind for p in packets[STARTUP_BURST:]]
    assert max(len(d) for d in datagrams) <= 1472
    assert decoder.chunks == records
    assert (decoder.lost, decoder.late, decoder.malformed, decoder.aborted) == (0, 0, 0, 0)
    data_seen = 0
    for packet in packets:
        if packet.kind in (DATA_FIRST, DATA):
            assert packet.seq == data_seen
            data_seen += 1
        elif packet.kind in (HEARTBEAT, SHUTDOWN):
            assert packet.seq == data_seen, "HeartBeat/Shutdown must carry the current seq"
    assert data_seen == sum(max(1, -(-len(r) // 1463)) for r in records)
    assert decoder.shutdowns >= 1, "a graceful stop sends a Shutdown burst"
