"""The independent v1 peer against the specification (docs/wire-protocol.md) itself: byte
layout, chunking, loss, wrap."""

from __future__ import annotations

import random

import pytest

from tests.interop.v1peer import (
    DATA,
    DATA_FIRST,
    HEADER_LEN,
    HEARTBEAT,
    SEQ_SPACE,
    STARTUP,
    Decoder,
    Encoder,
    header,
    parse,
)


def test_header_layout_is_little_endian_type_seq_length_remaining():
    assert header(DATA_FIRST, 0x01020304, 0x0506, 0x0708) == bytes(
        [3, 0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x08, 0x07]
    )
    assert HEADER_LEN == 9
    assert header(DATA, SEQ_SPACE + 5, 0, 0)[1:5] == (5).to_bytes(4, "little")


@pytest.mark.parametrize(
    "datagram",
    [b"", b"\x03\x00\x00\x00\x00\x00\x00\x00", header(7, 0, 0, 0), header(DATA, 0, 5, 0) + b"abc"],
    ids=["empty", "short", "unknown-type", "length-mismatch"],
)
def test_malformed_datagrams_are_refused(datagram):
    with pytest.raises(ValueError):
        parse(datagram)


@pytest.mark.parametrize("max_packet_size", [64, 1472, 65507])
def test_chunks_of_any_size_round_trip_with_the_documented_packet_count(max_packet_size):
    payload_max = max_packet_size - HEADER_LEN
    rng = random.Random(max_packet_size)
    sizes = [0, 1, payload_max - 1, payload_max, payload_max + 1, 3 * payload_max, 200_000]
    encoder, decoder = Encoder(max_packet_size), Decoder()
    for datagram in encoder.startup(5):
        decoder.feed(datagram)
    chunks = [rng.randbytes(size) for size in sizes]
    seq = 0
    for chunk in chunks:
        packets = [parse(d) for d in encoder.chunk(chunk)]
        assert len(packets) == max(1, -(-len(chunk) // payload_max))
        assert [p.kind for p in packets] == [DATA_FIRST] + [DATA] * (len(packets) - 1)
        assert [p.remaining for p in packets] == list(range(len(packets) - 1, -1, -1))
        assert [p.seq for p in packets] == list(range(seq, seq + len(packets)))
        assert all(len(p.payload) <= payload_max for p in packets)
        seq += len(packets)
        for packet in packets:
            decoder.feed(
                header(packet.kind, packet.seq, len(packet.payload), packet.remaining)
                + packet.payload
            )
    assert decoder.chunks == chunks
    assert (decoder.lost, decoder.malformed, decoder.aborted, decoder.startups) == (0, 0, 0, 5)
    assert parse(encoder.heartbeat()).seq == seq


def test_one_lost_packet_aborts_exactly_its_chunk_and_counts_one():
    encoder, decoder = Encoder(64), Decoder()
    streams = [encoder.chunk(bytes([i]) * 200) for i in range(5)]  # 4 packets each
    del streams[2][1]
    for datagram in encoder.startup(1) + [d for packets in streams for d in packets]:
        decoder.feed(datagram)
    assert decoder.chunks == [bytes([i]) * 200 for i in (0, 1, 3, 4)]
    assert (decoder.lost, decoder.aborted) == (1, 1)


def test_a_lost_tail_is_detected_by_the_next_heartbeat():
    encoder, decoder = Encoder(64), Decoder()
    packets = encoder.startup(1) + encoder.chunk(b"x" * 100) + encoder.chunk(b"y" * 100)
    for datagram in packets[:-1]:
        decoder.feed(datagram)
    decoder.feed(encoder.heartbeat())
    assert decoder.chunks == [b"x" * 100]
    assert (decoder.lost, decoder.aborted) == (1, 1)


def test_sequence_wraps_at_2_32_without_losing_or_inventing_packets():
    start = SEQ_SPACE - 3
    encoder, decoder = Encoder(64, first_seq=start), Decoder(expected=start)
    chunks = [bytes([i]) * 150 for i in range(4)]  # 3 packets each: the wrap falls inside one
    seqs = []
    for chunk in chunks:
        for datagram in encoder.chunk(chunk):
            seqs.append(parse(datagram).seq)
            decoder.feed(datagram)
    assert seqs == [(start + i) % SEQ_SPACE for i in range(12)]
    assert decoder.chunks == chunks
    assert (decoder.lost, decoder.late) == (0, 0)
    assert parse(encoder.heartbeat()).seq == 9


def test_duplicates_are_late_and_startup_resets_to_zero():
    encoder, decoder = Encoder(64), Decoder()
    first = encoder.chunk(b"a" * 100)
    for datagram in encoder.startup(2) + first + first[:1]:
        decoder.feed(datagram)
    assert decoder.late == 1 and decoder.chunks == [b"a" * 100]
    restart = Encoder(64)
    for datagram in restart.startup(1) + restart.chunk(b"b"):
        decoder.feed(datagram)
    assert decoder.chunks == [b"a" * 100, b"b"]
    assert parse(restart.startup(1)[0]) == parse(header(STARTUP, 0, 0, 0))
    assert parse(restart.heartbeat()).kind == HEARTBEAT
