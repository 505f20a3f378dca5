"""The egress receiver's handling of whole datagrams (driven directly, no sockets), and of the
transport's."""

from __future__ import annotations

from ddc.egress.link import LinkState
from ddc.egress.receiver import Receiver
from ddc.protocol.fragment import Sequence, fragment
from ddc.protocol.wire import MessageType, encode_header
from tests.unit import direct
from tests.unit.direct import capturing_transport, make_receiver

A = ("10.0.0.1", 4000)


def datagrams(chunks: list[bytes], sequence: Sequence) -> list[bytes]:
    out = []
    for chunk in chunks:
        out += [header + bytes(payload) for header, payload in fragment(chunk, 1463, sequence)]
    return out


def feed(receiver: Receiver, packets: list[bytes], address=A) -> None:
    direct.feed(receiver, packets, address)


def test_restarted_sender_whose_startup_was_lost_is_followed_again():
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, [encode_header(MessageType.STARTUP, 0, 0)])
    feed(receiver, datagrams([b"old-%d" % i for i in range(100)], Sequence()))
    feed(receiver, [encode_header(MessageType.HEARTBEAT, 100, 0)])  # the old session's last
    # the ingress restarts on the same address; its StartUp burst is lost; it sends a HeartBeat
    feed(receiver, [encode_header(MessageType.HEARTBEAT, 0, 0)])
    new = [b"new-%d" % i for i in range(10)]
    feed(receiver, datagrams(new, Sequence()))
    assert delivered[100:] == new
    assert receiver.reassembler.stats.resyncs == 1


def test_every_datagram_is_counted_exactly_once():
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    good = datagrams([b"x" * 5000], Sequence())
    feed(receiver, good)
    feed(receiver, [b"", b"\x01", bytes(9), encode_header(3, 5, 100, 0) + b"short"])
    feed(receiver, good, address=("10.0.0.9", 1))
    received = sum(receiver.received)
    assert received == len(good)
    assert sum(receiver.malformed.values()) == 4
    assert receiver.malformed == {"short": 2, "unknown_type": 1, "length_mismatch": 1}
    assert receiver.foreign == len(good)


def test_datagrams_from_a_sender_other_than_the_expected_one_are_foreign_before_any_pin():
    delivered: list[bytes] = []
    receiver = make_receiver(delivered, link=LinkState(1.0, expected_sender="10.0.0.1:4000"))
    startup = encode_header(MessageType.STARTUP, 0, 0)
    feed(receiver, [startup, bytes(9)], address=("10.0.0.9", 4000))
    assert receiver.foreign == 2 and receiver.link.pinned is None
    feed(receiver, [startup, *datagrams([b"ok"], Sequence())])
    assert delivered == [b"ok"] and receiver.link.pinned == A


def test_what_the_transport_sends_the_receiver_delivers_byte_identical():
    transport, udp = capturing_transport(A, startup_burst=3)
    chunks = [b"", b"a", b"b" * 1463, b"c" * 1464, bytes(range(256)) * 300]
    transport.send_startup()
    for chunk in chunks:
        assert transport.send_chunk(chunk)
    transport.send_heartbeat()
    transport.send_shutdown()
    assert transport.chunks == len(chunks) and transport.handed_over == 1 + 1 + 1 + 2 + 53
    assert len(udp.sent) == 3 + transport.data_packets + 1 + 2
    assert all(len(datagram) <= 1472 for datagram in udp.sent)

    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, udp.sent)
    assert delivered == chunks
    assert not receiver.malformed and receiver.foreign == 0
    stats = receiver.reassembler.stats
    assert stats.lost == 0 and stats.late == 0 and not stats.aborted
    assert receiver.link.released  # the Shutdown burst was understood
