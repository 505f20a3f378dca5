"""Wire header, fragmentation and reassembly (property tests with hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ddc.protocol.fragment import ChunkTooLarge, Sequence, fragment
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.wire import (
    HEADER_SIZE,
    LENGTH_MISMATCH,
    MAX_PAYLOAD,
    MAX_REMAINING,
    SEQ_MODULO,
    SHORT,
    UNKNOWN_TYPE,
    MessageType,
    encode_header,
    packets_for,
    parse_header,
    seq_distance,
    type_name,
)

MAX_CHUNK = 8 * 1024 * 1024


def packets(
    chunk: bytes, max_packet_size: int, sequence: Sequence
) -> list[tuple[int, int, bytes, int]]:
    """(type, seq, payload, remaining) of each packet, decoded from real datagram bytes."""
    out = []
    for header, payload in fragment(chunk, max_packet_size - HEADER_SIZE, sequence):
        datagram = header + bytes(payload)
        parsed = parse_header(datagram, len(datagram))
        assert not isinstance(parsed, str), parsed
        kind, seq, _, remaining = parsed
        out.append((kind, seq, datagram[HEADER_SIZE:], remaining))
    return out


def feed(reassembler: Reassembler, pkts) -> list[bytes]:
    delivered = []
    for kind, seq, payload, remaining in pkts:
        chunk = reassembler.packet(kind, seq, payload, remaining)
        if chunk is not None:
            delivered.append(bytes(chunk))
    return delivered


def test_header_layout_is_little_endian_9_bytes():
    assert encode_header(MessageType.DATA_FIRST, 0x01020304, 0x0506, 0x0708) == bytes(
        [3, 4, 3, 2, 1, 6, 5, 8, 7]
    )
    assert HEADER_SIZE == 9 and MAX_PAYLOAD == 65498


def test_a_header_parses_to_its_fields():
    datagram = encode_header(MessageType.DATA, 0xFFFFFFFF, 3, 7) + b"abc"
    assert parse_header(datagram, len(datagram)) == (MessageType.DATA, 0xFFFFFFFF, 3, 7)
    view = memoryview(bytearray(datagram) + b"unused buffer space")
    assert parse_header(view, len(datagram)) == (4, 0xFFFFFFFF, 3, 7)  # size, not len(view)
    assert encode_header(MessageType.HEARTBEAT, SEQ_MODULO + 5, 0) == encode_header(2, 5, 0)


def test_a_parity_header_parses_and_types_beyond_it_stay_unknown():
    parity = encode_header(MessageType.PARITY, 7, 3, 0) + b"xyz"
    assert parse_header(parity, len(parity)) == (6, 7, 3, 0)
    for kind in (0, 7, 8, 255):
        assert parse_header(encode_header(kind, 0, 0), 9) == UNKNOWN_TYPE


@pytest.mark.parametrize(
    "datagram, reason",
    [
        (b"", SHORT),
        (b"\x03\x00\x00", SHORT),
        (bytes([0, 0, 0, 0, 0, 0, 0, 0, 0]), UNKNOWN_TYPE),
        (bytes([7, 0, 0, 0, 0, 0, 0, 0, 0]), UNKNOWN_TYPE),
        (encode_header(3, 1, 10, 0) + b"abc", LENGTH_MISMATCH),
        (encode_header(3, 1, 0, 0) + b"abc", LENGTH_MISMATCH),
    ],
)
def test_malformed_headers_are_refused_with_their_reason(datagram, reason):
    assert parse_header(datagram, len(datagram)) == reason


def test_type_names_label_any_datagram():
    assert [type_name(encode_header(kind, 0, 0)) for kind in MessageType] == [
        "startup",
        "heartbeat",
        "data_first",
        "data",
        "shutdown",
        "parity",
    ]
    assert type_name(memoryview(encode_header(4, 6, 0))) == "data"
    assert type_name(b"\x03short") == "other"
    assert type_name(bytes(9)) == "other"


def test_packet_count_and_remaining():
    assert packets_for(0, 100) == 1
    assert packets_for(100, 100) == 1
    assert packets_for(101, 100) == 2
    pkts = packets(b"x" * 250, 100 + HEADER_SIZE, Sequence())
    assert [(k, s, r) for k, s, _, r in pkts] == [
        (MessageType.DATA_FIRST, 0, 2),
        (MessageType.DATA, 1, 1),
        (MessageType.DATA, 2, 0),
    ]
    assert [len(p) for _, _, p, _ in pkts] == [100, 100, 50]


def test_empty_chunk_is_one_empty_data_first():
    assert packets(b"", 1472, Sequence()) == [(MessageType.DATA_FIRST, 0, b"", 0)]
    assert feed(Reassembler(MAX_CHUNK), packets(b"", 1472, Sequence())) == [b""]


def test_chunk_needing_more_than_65536_packets_is_refused():
    sequence = Sequence(7)
    with pytest.raises(ChunkTooLarge):
        fragment(b"x" * (55 * 65537), 55, sequence)
    assert sequence.next == 7  # refused before it took a sequence number
    assert len(list(fragment(b"x" * (55 * 65536), 55, sequence))) == 65536


def test_packets_are_views_of_the_chunk():
    chunk = b"abcdefghij"
    [(header, payload)] = fragment(chunk, 10, Sequence())
    assert payload is chunk
    payloads = [payload for _, payload in fragment(chunk, 4, Sequence())]
    assert [bytes(p) for p in payloads] == [b"abcd", b"efgh", b"ij"]
    assert all(p.obj is chunk for p in payloads)


def test_a_multi_packet_chunk_takes_its_seqs_one_packet_at_a_time():
    sequence = Sequence(SEQ_MODULO - 1)
    packets_ = iter(fragment(b"x" * 30, 10, sequence))
    assert sequence.next == SEQ_MODULO - 1
    next(packets_)
    assert sequence.next == 0  # wrapped
    next(packets_)
    assert sequence.next == 1


@st.composite
def chunks(draw):
    """Sizes spread over 0..8 MiB (hypothesis' own binary() stays small), random content."""
    size = draw(st.one_of(st.integers(0, 70000), st.integers(0, MAX_CHUNK), st.just(MAX_CHUNK)))
    # content from a drawn seed: hypothesis' own Random makes megabytes too slowly
    return random.Random(draw(st.integers(0, 2**32 - 1))).randbytes(size)


packet_sizes = st.integers(min_value=64, max_value=65507)


@settings(max_examples=15, deadline=None)
@given(chunk=chunks(), max_packet_size=packet_sizes)
def test_any_chunk_round_trips(chunk, max_packet_size):
    # a chunk needing more packets than `remaining` counts is refused (tested above)
    assume(packets_for(len(chunk), max_packet_size - HEADER_SIZE) <= MAX_REMAINING + 1)
    pkts = packets(chunk, max_packet_size, Sequence())
    assert all(len(p) + HEADER_SIZE <= max_packet_size for _, _, p, _ in pkts)
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    assert feed(reassembler, pkts) == [chunk]
    assert reassembler.stats.lost == 0 and not reassembler.stats.aborted


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=20000), min_size=1, max_size=12),
    max_packet_size=st.integers(min_value=64, max_value=4000),
    data=st.data(),
)
def test_dropping_any_one_packet_loses_exactly_that_chunk(sizes, max_packet_size, data):
    sequence = Sequence()
    stream = []  # (chunk index, packet)
    chunks_sent = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    for index, chunk in enumerate(chunks_sent):
        stream += [(index, p) for p in packets(chunk, max_packet_size, sequence)]
    victim = data.draw(st.integers(min_value=0, max_value=len(stream) - 1))
    victim_chunk = stream[victim][0]
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    delivered = feed(reassembler, [p for i, (_, p) in enumerate(stream) if i != victim])
    reassembler.observe_seq(sequence.next)  # the HeartBeat after the stream
    assert delivered == [c for i, c in enumerate(chunks_sent) if i != victim_chunk]
    assert reassembler.stats.lost == 1
    multi_packet = sum(1 for index, _ in stream if index == victim_chunk) > 1
    assert sum(reassembler.stats.aborted.values()) == (1 if multi_packet else 0)


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(min_value=SEQ_MODULO - 50, max_value=SEQ_MODULO - 1),
    sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40),
)
def test_wrap_around_neither_loses_nor_invents(start, sizes):
    sequence = Sequence(start)
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.expected = start
    sent = [bytes([i % 256]) * s for i, s in enumerate(sizes)]
    delivered = []
    for chunk in sent:
        delivered += feed(reassembler, packets(chunk, 1000, sequence))
    reassembler.observe_seq(sequence.next)
    assert delivered == sent
    assert reassembler.stats.lost == 0 and reassembler.stats.late == 0
    assert reassembler.expected == sequence.next


def test_late_and_duplicate_packets_are_dropped_and_counted():
    pkts = packets(b"a" * 300, 100 + HEADER_SIZE, Sequence())
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    out = feed(reassembler, [pkts[0], pkts[1], pkts[1], pkts[2], pkts[0]])
    assert out == [b"a" * 300]
    assert reassembler.stats.late == 2 and reassembler.stats.lost == 0


def test_gap_lost_count_across_wrap():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.expected = SEQ_MODULO - 2
    reassembler.packet(MessageType.DATA_FIRST, 3, b"x", 0)
    assert reassembler.stats.lost == 5  # 2^32-2, 2^32-1, 0, 1, 2
    assert seq_distance(3, SEQ_MODULO - 2) == 5
    assert seq_distance(SEQ_MODULO - 2, 3) == -5


def test_oversized_and_inconsistent_chunks_are_aborted():
    reassembler = Reassembler(max_chunk_size=150)
    reassembler.reset()
    assert feed(reassembler, packets(b"z" * 300, 100 + HEADER_SIZE, Sequence())) == []
    assert reassembler.stats.malformed["chunk_too_large"] == 1
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    reassembler.packet(MessageType.DATA_FIRST, 0, b"a", 3)
    assert reassembler.packet(MessageType.DATA, 1, b"b", 0) is None  # skipped remaining 2 and 1
    assert reassembler.stats.malformed["remaining_mismatch"] == 1
    assert reassembler.stats.aborted["malformed"] == 1


def test_startup_drops_partial_chunk_and_resets_sequence():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    reassembler.packet(MessageType.DATA_FIRST, 0, b"a", 1)
    reassembler.reset()
    assert reassembler.stats.aborted["startup"] == 1
    assert feed(reassembler, packets(b"new", 1472, Sequence())) == [b"new"]


def test_unsynced_receiver_resyncs_at_next_data_first():
    pkts = packets(b"q" * 250, 100 + HEADER_SIZE, Sequence(1000)) + packets(
        b"w", 1472, Sequence(1003)
    )
    reassembler = Reassembler(MAX_CHUNK)  # joined mid-stream: no StartUp seen
    assert feed(reassembler, pkts[1:]) == [b"w"]
    assert reassembler.stats.orphaned == 2 and reassembler.stats.lost == 0


def test_sender_restart_without_startup_resyncs_on_heartbeat():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    reassembler.expected = 100_000  # where the old session stopped, its last HeartBeat seen
    reassembler.observe_seq(0)  # the restarted sender's first HeartBeat (its StartUp was lost)
    assert reassembler.stats.resyncs == 1 and reassembler.expected == 0
    assert feed(reassembler, packets(b"new", 1472, Sequence())) == [b"new"]
    assert reassembler.stats.lost == 0


def test_a_run_of_late_packets_resyncs_without_waiting_for_a_heartbeat():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.expected = 5000  # a restarted sender restarts at 0 and its StartUp was lost
    sequence = Sequence()
    chunks = [bytes([i]) * 10 for i in range(40)]
    delivered = []
    for chunk in chunks:
        delivered += feed(reassembler, packets(chunk, 1472, sequence))
    assert reassembler.stats.late == 31 and reassembler.stats.resyncs == 1
    assert delivered == chunks[31:]  # late packets are counted and dropped, then it follows


def test_a_reordered_heartbeat_slightly_behind_is_not_a_restart():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    sequence = Sequence()
    feed(reassembler, [p for i in range(2000) for p in packets(b"%d" % i, 1472, sequence)])
    reassembler.observe_seq(1500)  # sent after packet 1499, overtaken by the 500 after it
    assert reassembler.stats.resyncs == 0 and reassembler.expected == 2000
    reassembler.observe_seq(1999)  # no packet since the last HeartBeat could have overtaken it
    assert reassembler.stats.resyncs == 1
