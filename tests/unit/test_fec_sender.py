"""The ingress's parity sender with its encoder thread (ddc/ingress/fec_sender.py rules)."""

from __future__ import annotations

import threading

import pytest

from ddc.ingress import fec_sender
from ddc.ingress.fec_sender import EncodeWorker, ParitySender
from ddc.protocol.fec import PARITY, BlockJob, FecEncoder, encode_block, parse_parity
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


def test_the_worker_encodes_what_inline_encoding_sends():
    threaded, inline = Wire(), Wire()
    for wire, flag in ((threaded, True), (inline, False)):
        sender = ParitySender(FecEncoder(K, M), wire.send_parity, 1.0, threaded=flag)
        run(sender, wire, range(41))
        sender.flush()
        check_order(wire.sent)
    assert threaded.parity == inline.parity  # same bytes, same order among parity packets
    assert [first for kind, first in inline.sent if kind == "parity"][::M] == list(range(0, 41, K))


def test_parity_waits_for_no_more_than_one_block_with_a_slow_worker(monkeypatch):
    gate = threading.Event()

    def slow(job):  # in the worker thread only
        if threading.current_thread() is not threading.main_thread():
            gate.wait(5)
        return encode_block(job)

    monkeypatch.setattr(fec_sender, "encode_block", slow)
    monkeypatch.setattr(fec_sender, "WORKER_WAIT", 0.001)
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M), wire.send_parity, 1.0, threaded=True)
    run(sender, wire, range(3 * K))  # the worker never finishes: the sender encodes itself
    check_order(wire.sent)
    assert sender.inline_blocks == 3  # block 0 once block 1 closed, then 1 and 2 at once
    assert [f for k, f in wire.sent if k == "parity"][::M] == [0, K, 2 * K]
    gate.set()
    sender.flush()
    assert [f for k, f in wire.sent if k == "parity"][::M] == [0, K, 2 * K]
    check_order(wire.sent)


def test_an_idle_sender_collects_the_pending_parity_at_once_and_flush_leaves_nothing():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M, linger=10.0), wire.send_parity, 100.0, threaded=True)
    run(sender, wire, range(K), now=5.0)  # a block closed, nothing open
    assert sender.due_at() in (5.0, None)  # due at once (None: already collected)
    sender.flush()
    assert sender.due_at() is None
    assert [kind for kind, _ in wire.sent] == ["data"] * K + ["parity"] * M
    run(sender, wire, range(K, K + 1), now=6.0)  # an open block: its linger, not the worker
    assert sender.due_at() == 16.0


def test_reset_drops_the_old_sequences_pending_parity():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M), wire.send_parity, 100.0, threaded=True)
    run(sender, wire, range(K))
    sender.reset()
    sent_before = len(wire.sent)
    run(sender, wire, range(K))  # the new sequence's first block
    sender.flush()
    parity = [first for kind, first in wire.sent[sent_before:] if kind == "parity"]
    assert parity == [0] * M
    assert sum(kind == "parity" for kind, _ in wire.sent) in (M, 2 * M)  # old one sent or not


def test_a_worker_error_reaches_the_sender():
    worker = EncodeWorker()
    worker.submit(BlockJob([([], 0, 0)], M, 1))  # a group without data: zfec cannot encode it
    with pytest.raises(ValueError):
        worker.result(5.0)
    worker.submit(BlockJob([([datagram(0)], 0, 0)], M, 1))  # and it goes on working
    assert len(worker.result(5.0) or []) == M


def test_parity_bytes_are_well_formed():
    wire = Wire()
    sender = ParitySender(FecEncoder(K, M), wire.send_parity, 1.0, threaded=True)
    run(sender, wire, range(K))
    sender.flush()
    assert all(p[0] == PARITY and len(p) > HEADER_SIZE for p in wire.parity)
