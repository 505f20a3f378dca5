"""The ingress's FEC encoder as the transport drives it: when blocks close, where parity goes
(ddc/protocol/fec.py FecEncoder rules)."""

from __future__ import annotations

from ddc.protocol.fec import PARITY, FecEncoder, encode_group, parse_parity
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


def run(encoder: FecEncoder, wire: Wire, seqs: range, now: float = 1.0) -> None:
    """Data packets as the transport sends them: each one, then the parity it completed."""
    for seq in seqs:
        wire.sent.append(("data", seq))
        wire.send_parity(encoder.add(seq, datagram(seq), now))


def test_each_blocks_parity_follows_its_last_data_packet():
    wire = Wire()
    encoder = FecEncoder(K, M)
    run(encoder, wire, range(41))
    wire.send_parity(encoder.flush())
    expected: list[tuple[str, int]] = []
    for first in range(0, 41, K):
        expected += [("data", seq) for seq in range(first, min(first + K, 41))]
        expected += [("parity", first)] * M
    assert wire.sent == expected  # nothing of the next block before a block's parity
    same = []
    for first in range(0, 41, K):
        group = [datagram(seq) for seq in range(first, min(first + K, 41))]
        same += encode_group(group, first, M)
    assert wire.parity == same  # each group's parity, byte for byte


def test_an_open_block_is_due_at_its_linger_and_flush_leaves_nothing():
    wire = Wire()
    encoder = FecEncoder(K, M, linger=10.0, max_age=100.0)
    run(encoder, wire, range(K), now=5.0)  # a block closed and sent, nothing open
    assert encoder.due_at is None
    assert [kind for kind, _ in wire.sent] == ["data"] * K + ["parity"] * M
    run(encoder, wire, range(K, K + 1), now=6.0)  # an open block: due at its linger
    assert encoder.due_at == 16.0
    wire.send_parity(encoder.flush())
    assert encoder.due_at is None
    assert encoder.flush() == []
    assert wire.sent[-M:] == [("parity", K)] * M


def test_a_block_open_for_max_age_closes_with_the_next_data_packet():
    wire = Wire()
    encoder = FecEncoder(K, M, linger=10.0, max_age=0.05)
    run(encoder, wire, range(1), now=1.0)
    run(encoder, wire, range(1, 2), now=1.04)
    assert [kind for kind, _ in wire.sent] == ["data", "data"]
    run(encoder, wire, range(2, 3), now=1.05)
    assert wire.sent[3:] == [("parity", 0)] * M
    assert encoder.due_at is None
    assert parse_parity(wire.parity[0]).k == 3  # type: ignore[union-attr]


def test_reset_drops_the_old_sequences_open_block():
    wire = Wire()
    encoder = FecEncoder(K, M)
    run(encoder, wire, range(K - 1))
    encoder.reset()
    sent_before = len(wire.sent)
    run(encoder, wire, range(K))  # the new sequence's first block
    wire.send_parity(encoder.flush())
    parity = [first for kind, first in wire.sent[sent_before:] if kind == "parity"]
    assert parity == [0] * M
    assert sum(kind == "parity" for kind, _ in wire.sent) == M  # the old block never sent


def test_parity_bytes_are_well_formed():
    wire = Wire()
    encoder = FecEncoder(K, M)
    run(encoder, wire, range(K))
    wire.send_parity(encoder.flush())
    assert len(wire.parity) == M
    assert all(p[0] == PARITY and len(p) > HEADER_SIZE for p in wire.parity)
