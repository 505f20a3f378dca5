"""UDP GSO batches on the ingress (ddc/ingress/gso.py): the same datagrams, in fewer sends."""

from __future__ import annotations

import errno
import random
import socket

import pytest

from ddc.ingress import gso
from ddc.ingress.transport import Transport
from ddc.metrics import IngressMetrics
from ddc.protocol.auth import TRAILER_SIZE, Verifier
from ddc.protocol.auth_keys import new_key_line
from ddc.protocol.fec import PARITY
from ddc.protocol.wire import MessageType
from tests.unit.direct import CapturingSocket, capturing_transport, transport_settings

A = ("192.0.2.1", 4000)
STARTUP = MessageType.STARTUP


def test_a_batch_takes_equal_datagrams_then_one_shorter_one_within_the_limits():
    batch = gso.Batch()
    assert batch.fits(1500)
    batch.add([b"a" * 1000, b"b" * 500], 1500)
    assert batch.fits(1500) and batch.fits(1) and not batch.fits(1501)
    batch.add([b"c" * 1500], 1500)
    batch.add([b"d" * 700], 700)  # shorter: the batch's last
    assert not batch.fits(700) and not batch.fits(1)
    datagrams, buffers, segment, length = batch.take()
    assert (len(datagrams), len(buffers), segment, length) == (3, 4, 1500, 3700)
    assert not batch.datagrams and batch.fits(9000)  # empty again, any size starts it

    for _ in range(gso.MAX_SEGMENTS):
        batch.add([b"x"], 1)
    assert not batch.fits(1)  # the segment count
    batch.take()
    batch.add([b"x" * 30000], 30000)
    batch.add([b"x" * 30000], 30000)
    assert not batch.fits(30000) and batch.fits(gso.MAX_BYTES - 60000)  # the UDP length limit


@pytest.fixture(autouse=True)
def groups_close_by_count_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests compare two runs datagram by datagram: a FEC block that waits longer than the
    transport's max group age (50 ms; a loaded machine can pause a run that long) would be
    closed at another place in one of them, and its parity would differ."""
    monkeypatch.setattr("ddc.ingress.transport.FEC_MAX_GROUP_AGE", float("inf"))


def chunks(seed: int = 7, count: int = 60) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [rng.choice((0, 1, 200, 1448, 1463, 1464, 3000, 60_000, 200_000)) for _ in range(count)]
    return [rng.randbytes(size) for size in sizes]


def send_all(transport: Transport, count: int = 60) -> None:
    transport.send_startup()
    for chunk in chunks(count=count):
        assert transport.send_chunk(chunk)
    transport.send_shutdown()


def run(use_gso: bool, **config) -> tuple[Transport, CapturingSocket]:
    transport, udp = capturing_transport(A, use_gso, **config)
    send_all(transport)
    return transport, udp


@pytest.mark.parametrize(
    "fec",
    [{}, {"fec_data": 32, "fec_parity": 8}, {"fec_data": 4, "fec_parity": 3, "fec_interleave": 3}],
)
def test_gso_sends_exactly_the_datagrams_of_one_send_each_in_far_fewer_sends(fec):
    config = {"fec_linger_ms": 1e6, **fec}
    plain, plain_udp = run(False, **config)
    batched, batched_udp = run(True, **config)
    assert batched_udp.sent == plain_udp.sent
    assert set(plain_udp.sends) == {1}
    assert len(batched_udp.sends) * 4 < len(plain_udp.sends)
    assert max(batched_udp.sends) <= gso.MAX_SEGMENTS
    for attribute in ("data_packets", "data_bytes", "parity_packets", "parity_bytes", "chunks"):
        assert getattr(batched, attribute) == getattr(plain, attribute), attribute
    assert batched.handed_over == plain.handed_over == batched.sequence.next
    if fec:
        assert batched.parity_packets > 0


def test_with_auth_every_datagram_of_a_batch_carries_its_own_trailer(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(new_key_line(1) + "\n")
    keys.chmod(0o600)
    # FEC groups closed by count only (with the fixture above): on a loaded machine a 5 ms
    # linger closes them at other places in the two runs, and their parity differs
    config = {"auth_keys": str(keys), "envelope": "raw", "fec_data": 8, "fec_parity": 2}
    config["fec_linger_ms"] = 1e6
    _, plain_udp = run(False, **config)
    batched, batched_udp = run(True, **config)
    assert batched.auth is not None
    verifier = Verifier(batched.auth.keys, batched.auth.session_id)
    assert all(verifier.valid(d, len(d)) for d in batched_udp.sent if d[0] != STARTUP)
    # the same datagrams but for the trailer (and the StartUp: each session has its own id)
    strip = [
        [d[:-TRAILER_SIZE] for d in udp.sent if d[0] != STARTUP] for udp in (plain_udp, batched_udp)
    ]
    assert strip[0] == strip[1]
    assert len(batched_udp.sends) * 4 < len(plain_udp.sends)


class RefusingSocket(CapturingSocket):
    """A kernel that refuses GSO sends (EIO: no checksum offload on the route's device)."""

    def sendmsg(self, buffers, address, ancillary=()):
        if ancillary:
            raise OSError(errno.EIO, "Input/output error")
        return super().sendmsg(buffers, address)


def test_a_refused_gso_send_goes_datagram_by_datagram_and_gso_stays_off(caplog):
    config = {"fec_data": 32, "fec_parity": 8, "fec_linger_ms": 1e6}
    _, plain_udp = run(False, **config)
    transport, _ = capturing_transport(A, True, **config)
    transport.udp = udp = RefusingSocket()
    send_all(transport)
    assert udp.sent == plain_udp.sent
    assert transport.gso is False
    assert transport.metrics.send_errors._value.get() == 0
    refusals = [r for r in caplog.records if "refused a UDP GSO send" in r.getMessage()]
    assert len(refusals) == 1


def test_the_kernel_cuts_a_gso_send_into_the_same_datagrams_as_separate_sends():
    """Through this host's kernel, loopback: what a receiving socket gets, datagram by datagram."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5.0)
    settings = {
        "startup_burst": 1,
        "shutdown_burst": 1,
        "send_buffer": 4 << 20,
        "fec_data": 32,
        "fec_parity": 8,
        "fec_linger_ms": 1e6,
    }
    destination = receiver.getsockname()
    transport = Transport(transport_settings(destination, **settings), IngressMetrics())
    transport.open()
    try:
        if not transport.gso:
            pytest.skip("this kernel has no UDP GSO")
        reference, reference_udp = capturing_transport(A, False, **settings)
        for sender in (transport, reference):
            send_all(sender, count=12)
        got = [receiver.recv(65536) for _ in reference_udp.sent]
        assert transport.gso  # the kernel took every GSO send
        assert got == reference_udp.sent
        assert PARITY in {datagram[0] for datagram in got}
    finally:
        transport.close()
        receiver.close()
