"""FEC wired into the ingress transport and the egress receiver (driven directly, no sockets)."""

from __future__ import annotations

import random

from ddc.egress.loss import LossWindow
from ddc.egress.receiver import MAX_POLL_DEFER, Receiver
from ddc.ingress.transport import FEC_MAX_GROUP_AGE
from ddc.protocol.fec import PARITY, PARITY_OVERHEAD, parse_parity
from ddc.protocol.wire import HEADER, MessageType
from tests.unit import direct
from tests.unit.direct import capturing_transport

A = ("192.0.2.1", 4000)


def make_transport(
    k: int = 0, m: int = 0, interleave: int = 1, linger_ms: float = 5.0, mps=1472, ageless=True
):
    """`ageless`: groups close only when full, by the linger or at Shutdown; with the transport's
    FEC_MAX_GROUP_AGE a loaded machine that pauses this process for 50 ms closes one early."""
    transport, udp = capturing_transport(
        A,
        max_packet_size=mps,
        fec_data=k,
        fec_parity=m,
        fec_interleave=interleave,
        fec_linger_ms=linger_ms,
    )
    if ageless and transport.fec is not None:
        transport.fec.max_age = float("inf")
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


def test_a_group_open_for_the_max_age_closes_even_while_data_keeps_coming(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("ddc.ingress.transport.time.monotonic", lambda: clock[0])
    transport, udp = make_transport(32, 2, linger_ms=5, ageless=False)
    transport.send_startup()
    udp.sent.clear()
    transport.send_chunk(b"a")
    clock[0] += FEC_MAX_GROUP_AGE - 0.001
    transport.send_chunk(b"b")
    assert kinds(udp.sent) == [3, 3]  # a slow trickle: the sender never idled for the linger
    clock[0] += 0.001
    transport.send_chunk(b"c")
    assert kinds(udp.sent) == [3, 3, 3, PARITY, PARITY]
    assert parse_parity(udp.sent[-1]).k == 3


# --- the egress receiver --------------------------------------------------------------------


def make_receiver(delivered: list) -> Receiver:
    return direct.make_receiver(delivered, 1 << 24)


def feed(receiver: Receiver, packets: list[bytes]) -> None:
    direct.feed(receiver, packets, A)


def wire(k: int, m: int, chunks: list[bytes], interleave: int = 1) -> list[bytes]:
    """What the ingress sends for `chunks`: StartUp, data + parity, Shutdown."""
    transport, udp = make_transport(k, m, interleave, linger_ms=1e6)
    transport.send_startup()
    for chunk in chunks:
        assert transport.send_chunk(chunk)
    transport.send_shutdown()
    return udp.sent


def groups_of(sent: list[bytes]) -> list[list[int]]:
    """Indexes in `sent` of each FEC group's packets (data then parity), interleave 1."""
    groups, current = [], []
    for index, datagram in enumerate(sent):
        if datagram[0] in (3, 4):
            current.append(index)
        elif datagram[0] == PARITY:
            current.append(index)
            if parse_parity(datagram).index == parse_parity(datagram).m - 1:
                groups.append(current)
                current = []
    return groups


def test_at_most_m_lost_per_group_delivers_every_chunk_and_counts_the_repairs():
    chunks = random_chunks(300, seed=2)
    sent = wire(16, 4, chunks)
    rng = random.Random(3)
    dropped: set[int] = set()
    for group in groups_of(sent):
        dropped.update(rng.sample(group, rng.randint(0, 4)))
    data_dropped = sum(1 for i in dropped if sent[i][0] in (3, 4))
    assert data_dropped > 50
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, [d for i, d in enumerate(sent) if i not in dropped])
    assert delivered == chunks
    fec = receiver.fec.stats
    assert fec.recovered == data_dropped and fec.unrecoverable_groups == 0
    assert receiver.reassembler.stats.lost == 0 and not receiver.reassembler.stats.aborted
    assert receiver.fec.decoder.seen == (16, 4, 1)
    assert receiver.received[PARITY] == sum(1 for i, d in enumerate(sent) if d[0] == PARITY) - len(
        [i for i in dropped if sent[i][0] == PARITY]
    )
    receiver.fec.decoder.expire(1e9)  # parity losses are counted as groups are forgotten
    lost, arrived = receiver.loss_counts()
    assert (lost, arrived) == (len(dropped), sum(1 for d in sent if d[0] in (3, 4, 6)) - lost)


def test_more_than_m_lost_in_a_group_loses_exactly_its_missing_data_packets():
    chunks = [bytes([i]) * 100 for i in range(64)]  # one packet each
    sent = wire(8, 2, chunks)
    groups = groups_of(sent)
    dropped = set(groups[3][:3])  # three data packets of group 3: beyond its parity
    dropped |= set(groups[5][-2:])  # both parity packets of group 5: nothing lost
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, [d for i, d in enumerate(sent) if i not in dropped])
    assert delivered == chunks[:24] + chunks[27:]
    assert receiver.reassembler.stats.lost == 3
    assert receiver.fec.stats.unrecoverable_groups == 1 and receiver.fec.stats.recovered == 0


def test_a_lost_tail_announced_by_a_heartbeat_is_repaired_by_the_lingering_parity():
    transport, udp = make_transport(32, 4, linger_ms=1e6)
    transport.send_startup()
    chunks = [b"a" * 2000, b"b" * 500]  # 3 data packets
    for chunk in chunks:
        transport.send_chunk(chunk)
    transport.send_heartbeat()  # announces seq 3 before the group's parity is sent
    transport.flush_fec()
    sent = udp.sent
    assert [d[0] for d in sent[-6:]] == [4, 3, 2, PARITY, PARITY, PARITY, PARITY][-6:]
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, [d for d in sent if d[0] != 3 or HEADER.unpack_from(d)[1] != 2])
    assert delivered == chunks and receiver.reassembler.stats.lost == 0
    assert receiver.fec.stats.recovered == 1


def test_a_sender_without_fec_is_followed_as_in_v1_once_no_parity_comes():
    chunks = random_chunks(400, seed=5, largest=100)  # one packet each
    sent = wire(0, 0, chunks)
    dropped = {2 + 300, 2 + 350}  # after the StartUp burst: data packets 300 and 350
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, [d for i, d in enumerate(sent) if i not in dropped])
    assert delivered == chunks[:300] + chunks[301:350] + chunks[351:]
    assert receiver.reassembler.stats.lost == 2 and receiver.fec.holding == 0
    assert receiver.fec.decoder.seen is None and receiver.loss_counts() == (2, 398)


def test_the_hold_gives_up_after_max_delay_through_poll():
    chunks = [bytes([i]) * 50 for i in range(10)]
    sent = wire(32, 2, chunks)
    data = [d for d in sent if d[0] in (3, 4)]  # the parity (after the last chunk) is lost
    delivered: list[bytes] = []
    receiver = make_receiver(delivered)
    feed(receiver, [sent[0], *data[:4], *data[5:]])
    assert delivered == chunks[:4] and receiver.fec.holding == 5
    receiver.poll(receiver.fec.deadline + 0.001)
    assert delivered == chunks[:4] + chunks[5:] and receiver.reassembler.stats.lost == 1


class PeekSocket:
    """Stands in for the egress's UdpSocket in `Receiver.poll`: datagrams waiting or not."""

    def __init__(self) -> None:
        self.waiting = 0
        self.sock = self

    def recv(self, size: int, flags: int) -> bytes:
        if not self.waiting:
            raise BlockingIOError
        return b"x"


def test_the_hold_keeps_waiting_while_datagrams_wait_in_the_socket():
    chunks = [bytes([i]) * 50 for i in range(10)]
    sent = wire(32, 2, chunks)
    data = [d for d in sent if d[0] in (3, 4)]
    delivered: list[bytes] = []
    udp = PeekSocket()
    receiver = direct.make_receiver(delivered, udp=udp)
    feed(receiver, [sent[0], *data[:4], *data[5:]])
    deadline = receiver.fec.deadline
    udp.waiting = 1  # the egress was descheduled: the repairing parity may be in the socket
    receiver.poll(deadline + 0.5)
    assert receiver.fec.holding == 5 and len(delivered) == 4
    receiver.poll(deadline + MAX_POLL_DEFER)  # but not for ever
    assert receiver.fec.holding == 0 and receiver.reassembler.stats.lost == 1
    assert delivered == chunks[:4] + chunks[5:]


def test_loss_window_ratio_over_the_last_minute():
    window = LossWindow(60.0)
    assert window.ratio() is None
    window.sample(0.0, 0, 0)
    window.sample(1.0, 0, 0)
    assert window.ratio() is None  # no traffic
    window.sample(2.0, 10, 990)
    assert window.ratio() == 0.01
    for t in range(3, 200):
        window.sample(float(t), 10 + 2 * (t - 2), 990 + 98 * (t - 2))
    assert abs(window.ratio() - 0.02) < 1e-9  # the first minute's 1 % has left the window
    window.sample(201.0, 0, 5)  # counters restarted
    assert window.ratio() is None
