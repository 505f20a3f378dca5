"""The ingress's parity sender (ddc/ingress/fec_sender.py rules)."""

from __future__ import annotations

from ddc.ingress.fec_sender import ParitySender
from ddc.protocol.fec import PARITY, FecEncoder, parse_parity
from ddc.protocol.wire import HEADER_SIZE, MessageType, encode_header

K, M = 4, 2


def datagram(seq: int) -> bytes:
    payload = bytes([seq % 256]) * 100
    return encode_header(MessageType.DATA_FIRST, seq, len(payload), 0) + payload


class Wire:
    """What the transport would send, in order: ("data", seq) and ("parity", first seq)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.parity: list[bytes] = []

    def send_parity(self, parity: list[bytes]) -> None:
        for packet in parity:
            info = parse_parity(packet)
            assert not isinstance(info, str)
            self.sent.append(("parity", info.first))
            self.parity.append(packet)


def run(sender: ParitySender, wire: Wire, seqs: range, now: float = 1.0) -> None:
    for seq in seqs:
        wire.sent.append(("data", seq))
        sender.data(seq, datagram(seq), now)


def check_order(sent: list[tuple[str, int]]) -> None:
    """Each block's parity after its own data, before the next block's parity, and before the
    data of the block after next."""
    last = max(seq for kind, seq in sent if kind == "data")
    for position, (kind, first) in enumerate(sent):
        if kind != "parity":
            continue
        before = [seq for k, seq in sent[:position] if k == "data"]
        assert min(first + K - 1, last) in before  # after the block's last data packet
        assert first + 2 * K not in before  # at most the next block's data came in between
    firsts = [first for kind, first in sent if kind == "parity"]
    assert firsts == sorted(firsts)


def test_each_blocks_parity_follows_its_last_data_packet():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M), wire.send_parity, 1.0)
    run(sender, wire, range(41))
    sender.flush()
    check_order(wire.sent)
    expected: list[tuple[str, int]] = []
    for first in range(0, 41, K):
        expected += [("data", seq) for seq in range(first, min(first + K, 41))]
        expected += [("parity", first)] * M
    assert wire.sent == expected  # nothing of the next block before a block's parity
    reference = FecEncoder(K, M)
    same = [p for seq in range(41) for p in reference.add(seq, datagram(seq))] + reference.flush()
    assert wire.parity == same  # the encoder's own parity, byte for byte


def test_an_open_block_is_due_at_its_linger_and_flush_leaves_nothing():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M, linger=10.0), wire.send_parity, 100.0)
    run(sender, wire, range(K), now=5.0)  # a block closed and sent, nothing open
    assert sender.due_at() is None
    assert [kind for kind, _ in wire.sent] == ["data"] * K + ["parity"] * M
    run(sender, wire, range(K, K + 1), now=6.0)  # an open block: due at its linger
    assert sender.due_at() == 16.0
    sender.flush()
    assert sender.due_at() is None
    assert wire.sent[-M:] == [("parity", K)] * M


def test_a_block_open_for_max_age_closes_with_the_next_data_packet():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M, linger=10.0), wire.send_parity, 0.05)
    run(sender, wire, range(1), now=1.0)
    run(sender, wire, range(1, 2), now=1.04)
    assert [kind for kind, _ in wire.sent] == ["data", "data"]
    run(sender, wire, range(2, 3), now=1.05)
    assert wire.sent[3:] == [("parity", 0)] * M
    assert sender.due_at() is None


def test_reset_drops_the_old_sequences_open_block():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M), wire.send_parity, 100.0)
    run(sender, wire, range(K - 1))
    sender.reset()
    sent_before = len(wire.sent)
    run(sender, wire, range(K))  # the new sequence's first block
    sender.flush()
    parity = [first for kind, first in wire.sent[sent_before:] if kind == "parity"]
    assert parity == [0] * M
    assert sum(kind == "parity" for kind, _ in wire.sent) == M  # the old block never sent


def test_parity_bytes_are_well_formed():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M), wire.send_parity, 1.0)
    run(sender, wire, range(K))
    sender.flush()
    assert len(wire.parity) == M
    assert all(p[0] == PARITY and len(p) > HEADER_SIZE for p in wire.parity)
