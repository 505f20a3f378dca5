"""`peer = "reference"` on both sides against an emulation of the reference Rust DDC's limits
(tests/interop/reference.py): exact 65,498-byte fragments, 20 slots, no HeartBeats, stop on
Shutdown."""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from dedup_service.embedded import free_port
from devtools.harness import Daemon, wait_until, write_toml
from tests.interop.reference import FRAGMENT, SLOTS, ReferenceReceiver
from tests.interop.test_interop import STARTUP_BURST, receive, send_paced, udp_egress, udp_socket
from tests.interop.v1peer import Encoder

LARGEST = SLOTS * FRAGMENT  # the biggest chunk the reference can take


def test_the_emulation_refuses_what_the_reference_cannot_take():
    """Without this the tests below could pass against a receiver that takes anything."""
    fine = ReferenceReceiver()
    encoder = Encoder()
    for datagram in encoder.startup(3) + encoder.chunk(b"x" * LARGEST) + encoder.chunk(b"y"):
        fine.feed(datagram)
    assert fine.panicked is None and fine.chunks == [b"x" * LARGEST, b"y"]

    too_many = ReferenceReceiver()
    for datagram in Encoder().chunk(b"x" * (LARGEST + 1)):
        too_many.feed(datagram)
    assert too_many.panicked == "a chunk of 21 fragments (it has 20 slots)"

    small_packets = ReferenceReceiver()
    for datagram in Encoder(1472).chunk(b"x" * 3000):
        small_packets.feed(datagram)
    assert small_packets.panicked == "a 1463-byte fragment before the last (expects 65498)"

    shut = ReferenceReceiver()
    encoder = Encoder()
    for datagram in encoder.startup(3) + encoder.shutdown(1) + encoder.startup(3):
        shut.feed(datagram)
    for datagram in encoder.chunk(b"after"):
        shut.feed(datagram)
    assert shut.stopped and shut.chunks == [] and shut.ignored == 4


def ingress_config(tmp_path, source_port: int, destination: int, http_port: int):
    return write_toml(
        tmp_path / "ingress.toml",
        {
            "ingress": {"name": "to-reference", "http_listen": f"127.0.0.1:{http_port}"},
            "ingress.source": {"type": "tcp", "listen": f"127.0.0.1:{source_port}"},
            "ingress.transport": {
                "destination": f"127.0.0.1:{destination}",
                "peer": "reference",
                "startup_burst": STARTUP_BURST,
                "heartbeat_interval": 0.2,
            },
        },
    )


def send_records(port: int, records: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for record in records:
            conn.sendall(struct.pack(">I", len(record)) + record)


def drain(capture: socket.socket, receiver: ReferenceReceiver, until, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        capture.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            receiver.feed(capture.recv(65536))
        except TimeoutError:
            break


def test_ingress_keeps_within_the_reference_receivers_limits(tmp_path):
    capture = udp_socket()
    source_port, http_port = free_port(), free_port()
    config = ingress_config(tmp_path, source_port, capture.getsockname()[1], http_port)
    rng = random.Random(3)
    sizes = [0, 1, FRAGMENT, FRAGMENT + 1, LARGEST, LARGEST + 1, 100]
    records = [rng.randbytes(size) for size in sizes]
    fits = [record for record in records if len(record) <= LARGEST]
    receiver = ReferenceReceiver()
    ingress = Daemon("ingress", config, http_port, tmp_path / "ingress.log").start()
    try:
        send_records(source_port, records)
        drain(capture, receiver, lambda: len(receiver.chunks) == len(fits), 20)
        assert receiver.panicked is None
        assert receiver.chunks == fits
        wait_until(
            lambda: (
                ingress.metric('ddc_ingress_records_dropped_total{reason="reference_chunk_limit"}')
                == 1
            ),
            5,
            message="the 21-fragment record counted as dropped",
        )
        assert ingress.metric("ddc_ingress_records_dropped_total") == 1
        assert "needs more than 20 packets" in (tmp_path / "ingress.log").read_text()
        assert ingress.stop() == 0
        drain(capture, receiver, lambda: False, 1.0)
        assert receiver.shutdowns == 0 and not receiver.stopped, "no Shutdown to a reference"

        # a restarted ingress: the reference receiver, still listening, takes its records
        again = Daemon("ingress", config, http_port, tmp_path / "ingress2.log").start()
        try:
            send_records(source_port, [b"after the restart"])
            drain(capture, receiver, lambda: len(receiver.chunks) == len(fits) + 1, 10)
            assert receiver.chunks[-1] == b"after the restart"
            assert receiver.panicked is None and receiver.lost == 0
        finally:
            again.stop()
    finally:
        ingress.stop()
        capture.close()


@pytest.fixture
def reference_egress(tmp_path):
    spool = {"egress.spool": {"dir": ""}}
    with udp_egress(tmp_path, "from-reference", {"peer": "reference"}, spool) as running:
        yield running


def test_egress_behind_a_reference_ingress_raises_no_false_alarm_and_follows_a_restart(
    reference_egress,
):
    daemon, link, sink = reference_egress
    first, restarted = udp_socket(), udp_socket()
    try:
        encoder = Encoder()  # 65,507-byte packets, and never a HeartBeat
        records = [b"one", b"t" * (FRAGMENT + 5), b"three"]  # 2 packets; fits the UDP sink
        datagrams = encoder.startup(STARTUP_BURST)
        for record in records:
            datagrams += encoder.chunk(record)
        send_paced(first, link, datagrams)
        assert receive(sink, len(records)) == records
        time.sleep(6.0)  # quiet for longer than the 5 s a ddc peer's heartbeat_timeout allows
        health = daemon.health()
        assert health["link_up"] is True
        assert daemon.metric("ddc_egress_link_interruptions_total") == 0

        # the reference restarted on a new port: its StartUp takes over at once
        again = Encoder()
        send_paced(restarted, link, again.startup(STARTUP_BURST) + again.chunk(b"new session"))
        assert receive(sink, 1, timeout=2.0) == [b"new session"]
        # the old port is refused now, counted as foreign
        send_paced(first, link, encoder.chunk(b"stale"))
        wait_until(
            lambda: daemon.metric("ddc_egress_foreign_packets_total") == 1,
            5,
            message="the old sender's packet counted as foreign",
        )
        assert receive(sink, 1, timeout=0.5) == []
        assert daemon.metric("ddc_egress_packets_lost_total") == 0
    finally:
        first.close()
        restarted.close()
