"""FEC: any K of a group's K+M packets restore it byte-identical; exact accounting otherwise."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddc.protocol.fec import (
    PARITY,
    PARITY_OVERHEAD,
    FecEncoder,
    check_params,
    data_datagram_max,
    encode_group,
    parse_parity,
)
from ddc.protocol.fec_decoder import EVICT_BATCH, FecDecoder
from ddc.protocol.fec_receive import FecReceiver
from ddc.protocol.fragment import Sequence, fragment
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.wire import (
    HEADER,
    HEADER_SIZE,
    MAX_DATAGRAM,
    SEQ_MODULO,
    MessageType,
    encode_header,
)

MAX_DATA = data_datagram_max(MAX_DATAGRAM)  # 65492
MAX_CHUNK = 1 << 24
FAR = 1e9  # a time after every bound

Event = tuple[str, int, bytes]  # ("data", seq, datagram) or ("parity", group's first seq, datagram)
fec_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def data_datagram(seq: int, size: int) -> bytes:
    """A one-packet chunk of `size` bytes on the wire (DataFirst, remaining 0)."""
    payload = random.Random(seq * 7919 + size).randbytes(size - HEADER_SIZE)
    return encode_header(MessageType.DATA_FIRST, seq, len(payload), 0) + payload


def send(encoder: FecEncoder, datagrams: list[bytes]) -> list[Event]:
    """The wire: data datagrams with seq 0.. and the parity the encoder adds, in send order."""
    events: list[Event] = []
    for seq, datagram in enumerate(datagrams):
        assert HEADER.unpack_from(datagram)[1] == seq
        events.append(("data", seq, datagram))
        events += [("parity", HEADER.unpack_from(p)[1], p) for p in encoder.add(seq, datagram)]
    events += [("parity", HEADER.unpack_from(p)[1], p) for p in encoder.flush()]
    return events


def chunk_datagrams(chunks: list[bytes], payload_max: int) -> list[bytes]:
    sequence = Sequence()
    return [
        header + bytes(payload)
        for chunk in chunks
        for header, payload in fragment(chunk, payload_max, sequence)
    ]


def groups_of(events: list[Event]) -> dict[int, list[int]]:
    """Each group's first seq -> the indexes (in `events`) of its data and parity packets."""
    group_of_seq: dict[int, int] = {}
    groups: dict[int, list[int]] = {}
    for index, (kind, _, datagram) in enumerate(events):
        if kind == "parity":
            info = parse_parity(datagram)
            assert not isinstance(info, str)
            if info.first not in groups:
                groups[info.first] = []
                for i in range(info.k):
                    group_of_seq[info.member(i)] = info.first
            groups[info.first].append(index)
    for index, (kind, seq, _) in enumerate(events):
        if kind == "data" and seq in group_of_seq:
            groups[group_of_seq[seq]].append(index)
    return groups


class Outcome:
    """What FEC must make of a loss pattern, worked out from the groups' packet counts."""

    def __init__(self, events: list[Event], lost: set[int]) -> None:
        self.recovered: set[int] = set()
        self.gone: set[int] = set()  # data seqs lost for good
        self.unrecoverable_groups = 0
        self.unrecoverable_packets = 0
        grouped: set[int] = set()
        for indexes in groups_of(events).values():
            grouped.update(indexes)
            k = sum(1 for i in indexes if events[i][0] == "data")
            lost_data = {events[i][1] for i in indexes if i in lost and events[i][0] == "data"}
            parity_heard = any(events[i][0] == "parity" and i not in lost for i in indexes)
            if not lost_data:
                continue
            if len(indexes) - len(lost.intersection(indexes)) >= k:
                self.recovered |= lost_data
            else:
                self.gone |= lost_data
                if parity_heard:
                    self.unrecoverable_groups += 1
                    self.unrecoverable_packets += len(lost_data)
        self.gone |= {events[i][1] for i in lost - grouped}  # M = 0: no group at all


def v1_result(datagrams: list[bytes], gone: set[int]) -> tuple[list[bytes], Reassembler]:
    """What plain v1 reassembly delivers from the data packets minus `gone`."""
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()  # as after a StartUp: expects seq 0
    delivered = []
    for datagram in datagrams:
        kind, seq, length, remaining = HEADER.unpack_from(datagram)
        if seq in gone:
            continue
        chunk = reassembler.packet(kind, seq, datagram[HEADER_SIZE:], remaining)
        if chunk is not None:
            delivered.append(bytes(chunk))
    reassembler.observe_seq(len(datagrams))
    return delivered, reassembler


def fec_result(events: list[Event], lost: set[int]) -> tuple[list[bytes], FecReceiver]:
    """What the FEC receiver delivers from the packets not in `lost` (then a HeartBeat)."""
    delivered: list[bytes] = []
    receiver = FecReceiver(Reassembler(MAX_CHUNK), lambda chunk: delivered.append(bytes(chunk)))
    receiver.reassembler.reset()
    data_count = 0
    for index, (kind, seq, datagram) in enumerate(events):
        data_count += kind == "data"
        if index in lost:
            continue
        if kind == "data":
            receiver.data(seq, memoryview(datagram), 0.0)
        else:
            receiver.parity(memoryview(datagram), 0.0)
    receiver.heartbeat(data_count, 0.0)
    receiver.poll(FAR)
    assert receiver.holding == 0
    return delivered, receiver


small_sizes = st.lists(st.integers(HEADER_SIZE, 300), min_size=1, max_size=200)
big_size = st.sampled_from([1472, 8972, MAX_DATA])


@st.composite
def datagram_sizes(draw: st.DrawFn) -> list[int]:
    """Mostly small datagrams, sometimes one large one (up to the largest FEC allows)."""
    sizes = draw(small_sizes)
    if draw(st.integers(0, 3)) == 0:
        sizes[draw(st.integers(0, len(sizes) - 1))] = draw(big_size)
    return sizes


@dataclass
class Stream:
    """Datagrams (with the chunks they are the fragments of, if any) as an FecEncoder sent them."""

    k: int
    m: int
    interleave: int
    datagrams: list[bytes]
    chunks: list[bytes] = field(default_factory=list)
    events: list[Event] = field(init=False)

    def __post_init__(self) -> None:
        self.events = send(FecEncoder(self.k, self.m, self.interleave), self.datagrams)


def coding(draw: st.DrawFn, k_max: int, m_min: int, m_max: int) -> tuple[int, int, int]:
    """(K 1..k_max, M m_min..m_max, interleave 1..4)."""
    return draw(st.integers(1, k_max)), draw(st.integers(m_min, m_max)), draw(st.integers(1, 4))


@st.composite
def packet_streams(draw: st.DrawFn, m_min: int) -> Stream:
    """One-packet chunks (datagram_sizes()), K 1..64, M m_min..16."""
    sizes = draw(datagram_sizes())
    datagrams = [data_datagram(seq, size) for seq, size in enumerate(sizes)]
    return Stream(*coding(draw, 64, m_min, 16), datagrams)


chunk_lists = st.lists(st.binary(max_size=2000), min_size=1, max_size=40)


@st.composite
def chunk_streams(draw: st.DrawFn, m_min: int) -> Stream:
    """Chunks fragmented to payloads of 1..400 bytes, K 1..24, M m_min..6."""
    chunks = draw(chunk_lists)
    datagrams = chunk_datagrams(chunks, draw(st.integers(1, 400)))
    return Stream(*coding(draw, 24, m_min, 6), datagrams, chunks)


@st.composite
def losses_per_group(draw: st.DrawFn, events: list[Event], most: int | None) -> set[int]:
    """For each group, any set of its packets (of at most `most` when given)."""
    lost: set[int] = set()
    for indexes in groups_of(events).values():
        size = len(indexes) if most is None else min(most, len(indexes))
        lost |= draw(st.sets(st.sampled_from(indexes), max_size=size))
    return lost


def feed_decoder(events: list[Event], lost: set[int]) -> tuple[dict[int, bytes], FecDecoder]:
    decoder = FecDecoder()
    restored: dict[int, bytes] = {}
    for index, (kind, seq, datagram) in enumerate(events):
        if index in lost:
            continue
        if kind == "data":
            out = decoder.data(seq, memoryview(datagram), 0.0)
        else:
            out = decoder.parity(memoryview(datagram), 0.0)
        for restored_seq, restored_datagram in out:
            assert restored_seq not in restored
            restored[restored_seq] = restored_datagram
    decoder.expire(FAR)
    return restored, decoder


@fec_settings
@given(stream=packet_streams(m_min=0), data=st.data())
def test_at_most_m_lost_per_group_restores_every_data_packet_byte_identical(stream, data):
    datagrams, events = stream.datagrams, stream.events
    lost = data.draw(losses_per_group(events, stream.m))
    restored, decoder = feed_decoder(events, lost)
    lost_data = {events[i][1] for i in lost if events[i][0] == "data"}
    assert set(restored) == lost_data
    for seq, datagram in restored.items():
        assert datagram == datagrams[seq]
    assert decoder.stats.recovered == len(lost_data)
    assert decoder.stats.unrecoverable_groups == decoder.stats.unrecoverable_packets == 0
    assert sum(decoder.stats.malformed.values()) == 0


@fec_settings
@given(stream=packet_streams(m_min=1), data=st.data())
def test_any_loss_loses_exactly_the_unrecoverable_packets_and_counts_them(stream, data):
    datagrams, events = stream.datagrams, stream.events
    lost = data.draw(losses_per_group(events, None))
    expected = Outcome(events, lost)
    restored, decoder = feed_decoder(events, lost)
    assert set(restored) == expected.recovered
    assert all(restored[seq] == datagrams[seq] for seq in restored)
    assert decoder.stats.recovered == len(expected.recovered)
    assert decoder.stats.unrecoverable_groups == expected.unrecoverable_groups
    assert decoder.stats.unrecoverable_packets == expected.unrecoverable_packets


@fec_settings
@given(stream=chunk_streams(m_min=0), data=st.data())
def test_receiver_delivers_what_v1_delivers_from_the_packets_fec_could_not_restore(stream, data):
    chunks, datagrams, events = stream.chunks, stream.datagrams, stream.events
    # parity consumes no seq: the data are the v1 packets, unchanged, seq 0, 1, 2, ...
    assert [e[2] for e in events if e[0] == "data"] == datagrams
    assert [e[1] for e in events if e[0] == "data"] == list(range(len(datagrams)))
    lost = data.draw(st.sets(st.integers(0, len(events) - 1)))
    expected = Outcome(events, lost)
    want, v1 = v1_result(datagrams, expected.gone)
    got, receiver = fec_result(events, lost)
    assert got == want
    assert receiver.reassembler.stats.lost == v1.stats.lost
    assert receiver.reassembler.stats.aborted == v1.stats.aborted
    assert receiver.stats.recovered == len(expected.recovered)
    assert receiver.stats.repaired_late == 0
    if not lost:
        assert got == chunks
        assert receiver.stats.held == receiver.stats.gaps_given_up == 0


@fec_settings
@given(stream=chunk_streams(m_min=1), data=st.data())
def test_at_most_m_lost_per_group_delivers_every_chunk(stream, data):
    lost = data.draw(losses_per_group(stream.events, stream.m))
    got, receiver = fec_result(stream.events, lost)
    assert got == stream.chunks
    assert receiver.reassembler.stats.lost == 0


@fec_settings
@given(
    k=st.integers(1, 16),
    m=st.integers(1, 8),
    interleave=st.integers(2, 8),
    blocks=st.integers(1, 3),
    data=st.data(),
)
def test_interleaving_repairs_a_burst_of_n_times_m_consecutive_packets(
    k, m, interleave, blocks, data
):
    # whole blocks, and a last block closed early that still holds >= N data packets
    extra = data.draw(st.sampled_from([0, *range(interleave, k * interleave)]))
    count = blocks * k * interleave + extra
    datagrams = [data_datagram(seq, 9 + seq % 50) for seq in range(count)]
    events = send(FecEncoder(k, m, interleave), datagrams)
    length = data.draw(st.integers(1, interleave * m))
    start = data.draw(st.integers(0, len(events) - 1))
    lost = set(range(start, min(len(events), start + length)))
    got, receiver = fec_result(events, lost)
    assert got == datagrams_payloads(datagrams)
    assert receiver.reassembler.stats.lost == 0


def datagrams_payloads(datagrams: list[bytes]) -> list[bytes]:
    return [d[HEADER_SIZE:] for d in datagrams]


# ---- the format


def test_parity_datagram_layout():
    group = [data_datagram(10, 20), data_datagram(11, 31)]
    parity = encode_group(group, first=10, m=2, stride=1, slot=0)
    assert len(parity) == 2
    assert PARITY == 6 and PARITY_OVERHEAD == 15
    for index, datagram in enumerate(parity):
        assert len(datagram) == PARITY_OVERHEAD + 31  # the longest data datagram
        assert datagram[:HEADER_SIZE] == encode_header(PARITY, 10, 6 + 31, 0)
        # scheme 1 (zfec), K, M, index, stride, slot
        assert datagram[HEADER_SIZE:PARITY_OVERHEAD] == bytes([1, 2, 2, index, 1, 0])
        info = parse_parity(datagram)
        assert not isinstance(info, str)
        assert (info.first, info.k, info.m, info.index) == (10, 2, 2, index)
        assert [info.member(i) for i in range(info.k)] == [10, 11]


def test_parity_of_the_largest_data_datagrams_fits_in_one_datagram():
    assert MAX_DATA == MAX_DATAGRAM - PARITY_OVERHEAD == 65492
    assert data_datagram_max(1472) == 1457
    encoder = FecEncoder(2, 1)
    assert encoder.add(0, data_datagram(0, MAX_DATA)) == []
    (parity,) = encoder.add(1, data_datagram(1, 9))
    assert len(parity) == MAX_DATAGRAM
    with pytest.raises(ValueError, match="at most 65492"):
        encoder.add(2, data_datagram(2, MAX_DATA + 1))


@pytest.mark.parametrize(
    "k, m, interleave, key",
    [
        (0, 1, 1, "fec_data"),
        (2, 255, 1, "fec_parity"),
        (2, -1, 1, "fec_parity"),
        (2, 2, 0, "fec_interleave"),
        (2, 2, 256, "fec_interleave"),
    ],
)
def test_bad_parameters_name_their_key(k, m, interleave, key):
    with pytest.raises(ValueError, match=key):
        check_params(k, m, interleave)


def parity_headers(parity: list[bytes]) -> list[tuple[int, int]]:
    """(group's first seq, index) of each parity datagram."""
    out = []
    for datagram in parity:
        info = parse_parity(datagram)
        assert not isinstance(info, str)
        out.append((info.first, info.index))
    return out


def test_interleaved_block_sends_its_parity_round_robin_after_its_last_data_packet():
    encoder = FecEncoder(2, 2, interleave=3)
    out = [encoder.add(seq, data_datagram(seq, 12)) for seq in range(6)]
    assert out[:5] == [[]] * 5
    assert parity_headers(out[5]) == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    # closed early after 4 packets: slots 0 has 2 packets, 1 and 2 have one; the round goes on
    # after slot 0, the slot of the last data packet
    for seq in range(6, 10):
        assert encoder.add(seq, data_datagram(seq, 12)) == []
    assert parity_headers(encoder.flush()) == [(7, 0), (8, 0), (6, 0), (7, 1), (8, 1), (6, 1)]
    assert encoder.flush() == []
    assert encoder.groups_sent == 6 and encoder.parity_sent == 12


def test_linger_closes_a_short_group_and_a_seq_jump_closes_the_open_one():
    encoder = FecEncoder(4, 1, linger=0.005)
    assert encoder.due_at is None
    assert encoder.add(0, data_datagram(0, 9), now=100.0) == []
    assert encoder.due_at == pytest.approx(100.005)
    (parity,) = encoder.flush()
    info = parse_parity(parity)
    assert not isinstance(info, str) and info.k == 1
    assert encoder.due_at is None
    encoder.add(1, data_datagram(1, 9))
    (parity,) = encoder.add(0, data_datagram(0, 9))  # a new sequence (StartUp)
    assert HEADER.unpack_from(parity)[1] == 1
    encoder.reset()
    assert encoder.flush() == []
    assert FecEncoder(4, 0).add(0, data_datagram(0, 9)) == []


# ---- the decoder


def assert_refused(decoder: FecDecoder, malformed: set[str], accepted: int) -> None:
    """Each malformed reason counted once, one duplicate, `accepted` parity packets of 1 group."""
    assert dict(decoder.stats.malformed) == dict.fromkeys(malformed, 1)
    assert decoder.stats.duplicate_parity == 1
    assert decoder.stats.parity == accepted and decoder.stats.groups == 1


def test_malformed_and_duplicate_parity_are_counted_and_ignored():
    decoder = FecDecoder()
    good = encode_group([data_datagram(0, 20), data_datagram(1, 20)], 0, 2)
    bad_scheme = bytearray(good[0])
    bad_scheme[HEADER_SIZE] = 9
    bad_index = bytearray(good[0])
    bad_index[HEADER_SIZE + 3] = 2
    other_shape = encode_group([data_datagram(0, 20), data_datagram(1, 25)], 0, 2)[1]
    for datagram in (good[0][:20], bytes(bad_scheme), bytes(bad_index), good[0] + b"x"):
        assert decoder.parity(datagram, 0.0) == []
    assert decoder.parity(good[0], 0.0) == []
    assert decoder.parity(good[0], 0.0) == []
    assert decoder.parity(other_shape, 0.0) == []
    malformed = ("parity_short", "parity_scheme", "parity_header", "length_mismatch")
    assert_refused(decoder, {*malformed, "parity_mismatch"}, accepted=1)


def test_later_parity_of_a_settled_group_is_checked_like_the_first():
    """After a group is complete, its further parity packets take a shorter path: the same
    checks, the same counts."""
    data = [data_datagram(0, 20), data_datagram(1, 20)]
    good = encode_group(data, 0, 3)
    decoder = FecDecoder()
    for seq, datagram in enumerate(data):
        decoder.data(seq, datagram, 0.0)
    assert decoder.parity(good[0], 0.0) == []  # completes the group
    bad_scheme = bytearray(good[1])
    bad_scheme[HEADER_SIZE] = 9
    bad_length = bytearray(good[1])
    bad_length[5] += 1
    other_shape = encode_group([data_datagram(0, 20), data_datagram(1, 25)], 0, 3)[1]
    for datagram in (bytes(bad_scheme), bytes(bad_length), other_shape, good[0], good[1][:20]):
        assert decoder.parity(datagram, 0.0) == []
    assert decoder.parity(good[1], 0.0) == [] and decoder.parity(good[2], 0.0) == []
    malformed = {"parity_scheme", "length_mismatch", "parity_mismatch", "parity_short"}
    assert_refused(decoder, malformed, accepted=3)


def test_a_repair_from_packets_of_another_stream_is_refused_not_delivered():
    decoder = FecDecoder()
    decoder.data(1, data_datagram(1, 30), 0.0)
    # parity computed over different packets with the same seqs (e.g. an older session)
    foreign = encode_group([encode_header(3, 7, 11, 0) + bytes(11), data_datagram(1, 30)], 0, 1)
    assert decoder.parity(foreign[0], 0.0) == []
    assert decoder.stats.malformed["parity_bad_repair"] == 1
    assert decoder.stats.unrecoverable_groups == 1 and decoder.stats.recovered == 0


def test_groups_expire_by_time_and_count_when_still_missing_data():
    decoder = FecDecoder(group_max_age=5.0)
    group = [data_datagram(seq, 40) for seq in range(4)]
    parity = encode_group(group, 0, 2)
    decoder.data(0, group[0], 0.0)
    decoder.data(1, group[1], 0.0)
    decoder.parity(parity[0], 1.0)  # 3 of 4: waits for the second parity packet
    decoder.expire(5.5)
    assert decoder.stats.unrecoverable_groups == 0
    decoder.expire(6.5)
    assert decoder.stats.expired_groups == decoder.stats.unrecoverable_groups == 1
    assert decoder.stats.unrecoverable_packets == 2
    assert decoder.worst_loss(6.5) == 3  # 2 data + 1 parity packet never arrived
    assert decoder.repair_margin(6.5) == -1
    assert decoder.worst_loss(200.0) is None


def test_retained_data_are_bounded_by_span_and_bytes():
    decoder = FecDecoder()
    for seq in range(3000):
        decoder.data(seq, data_datagram(seq, 100), 0.0)
    assert decoder.retain == 1024
    assert decoder.retain <= len(decoder._recent) <= decoder.retain + EVICT_BATCH
    decoder = FecDecoder(max_retained_bytes=10_000)
    for seq in range(3000, 3010):
        decoder.data(seq, data_datagram(seq, 4000), 0.0)
    assert decoder._recent_bytes <= 10_000


# ---- the reorder hold


class Harness:
    def __init__(self, k: int = 4, m: int = 2, **hold) -> None:
        self.encoder = FecEncoder(k, m)
        self.delivered: list[bytes] = []
        self.fec = FecReceiver(
            Reassembler(MAX_CHUNK), lambda c: self.delivered.append(bytes(c)), **hold
        )
        self.fec.reassembler.reset()
        self.datagrams = [data_datagram(seq, 50) for seq in range(64)]

    def wire(self, count: int, flush: bool = False) -> list[Event]:
        return send_part(self.encoder, self.datagrams[:count], flush)

    def feed(self, events: list[Event], now: float = 0.0, skip: tuple[int, ...] = ()) -> None:
        for kind, seq, datagram in events:
            if kind == "data" and seq in skip:
                continue
            if kind == "data":
                self.fec.data(seq, datagram, now)
            else:
                self.fec.parity(datagram, now)

    def payloads(self, *seqs: int) -> list[bytes]:
        return [self.datagrams[seq][HEADER_SIZE:] for seq in seqs]


def send_part(encoder: FecEncoder, datagrams: list[bytes], flush: bool) -> list[Event]:
    events = send(encoder, datagrams) if flush else []
    if not flush:
        for seq, datagram in enumerate(datagrams):
            events.append(("data", seq, datagram))
            events += [("parity", 0, p) for p in encoder.add(seq, datagram)]
    return events


def test_packets_after_a_gap_wait_for_the_repair_then_go_in_order():
    h = Harness()
    events = h.wire(4)
    h.feed(events[:4], skip=(1,))
    assert h.delivered == h.payloads(0)
    assert h.fec.holding == 2
    h.feed(events[4:])  # the group's parity restores seq 1
    assert h.delivered == h.payloads(0, 1, 2, 3)
    assert h.fec.stats.recovered == 1 and h.fec.stats.held == 2
    assert h.fec.reassembler.stats.lost == 0


def test_a_gap_no_parity_repairs_is_given_up_after_max_delay():
    h = Harness(max_delay=0.1)
    events = h.wire(4)
    h.feed(events[:4], now=10.0, skip=(1,))
    assert h.fec.deadline == pytest.approx(10.1)
    h.fec.poll(10.05)
    assert h.delivered == h.payloads(0)
    h.fec.poll(10.11)
    assert h.delivered == h.payloads(0, 2, 3)
    assert h.fec.reassembler.stats.lost == 1 and h.fec.stats.gaps_given_up == 1
    assert h.fec.deadline is None
    h.feed(events[4:], now=10.2)  # the repair comes too late: dropped, counted
    assert h.fec.stats.repaired_late == 1
    assert h.delivered == h.payloads(0, 2, 3)


def test_a_heartbeat_announcing_a_lost_tail_waits_for_the_lingering_parity():
    h = Harness()
    events = h.wire(2, flush=True)  # two packets, the group closed by the linger
    h.feed(events[:1])
    h.fec.heartbeat(2, 0.0)  # seq 1 was lost
    assert h.fec.reassembler.stats.lost == 0
    h.feed(events[2:])
    assert h.delivered == h.payloads(0, 1)
    assert h.fec.reassembler.stats.lost == 0 and h.fec.stats.recovered == 1


def test_a_heartbeat_announcing_an_unrepairable_tail_counts_it_lost_after_max_delay():
    h = Harness(max_delay=0.1)
    h.feed(h.wire(2)[:1])
    h.fec.heartbeat(2, 1.0)
    h.fec.poll(1.11)
    assert h.fec.reassembler.stats.lost == 1


def test_without_parity_from_the_sender_nothing_is_held():
    h = Harness(decoder=FecDecoder(assume_active=False))
    for seq in (0, 2, 3):
        h.fec.data(seq, h.datagrams[seq], 0.0)
    assert h.delivered == h.payloads(0, 2, 3)
    assert h.fec.reassembler.stats.lost == 1 and h.fec.stats.held == 0
    # a fresh decoder presumes FEC on, until active_span data packets bring no parity
    h = Harness()
    for seq in range(1100):
        h.fec.data(seq, data_datagram(seq, 9), 0.0)
    h.fec.data(1101, data_datagram(1101, 9), 0.0)
    assert h.fec.holding == 0 and h.fec.reassembler.stats.lost == 1


def test_the_hold_is_bounded_in_packets():
    h = Harness(max_held=3)
    for seq in range(2, 7):
        h.fec.data(seq, h.datagrams[seq], 0.0)
    assert h.fec.holding <= 3
    assert h.fec.reassembler.stats.lost == 2


def test_startup_passes_on_what_is_held():
    h = Harness()
    h.feed(h.wire(4)[:4], skip=(1,))
    h.fec.startup(0.0)
    assert h.delivered == h.payloads(0, 2, 3)
    assert h.fec.holding == 0 and h.fec.reassembler.stats.lost == 1


def test_groups_across_the_sequence_wrap_are_restored():
    seqs = [(SEQ_MODULO - 5 + i) % SEQ_MODULO for i in range(12)]
    datagrams = {seq: data_datagram(seq, 20 + i) for i, seq in enumerate(seqs)}
    encoder = FecEncoder(4, 2, interleave=2)
    events: list[Event] = []
    for seq in seqs:
        events.append(("data", seq, datagrams[seq]))
        events += [("parity", 0, p) for p in encoder.add(seq, datagrams[seq])]
    events += [("parity", 0, p) for p in encoder.flush()]
    lost = {seqs[1], seqs[3], seqs[4], seqs[6]}  # 2 of each group of the block across the wrap
    delivered: list[bytes] = []
    fec = FecReceiver(Reassembler(MAX_CHUNK), lambda c: delivered.append(bytes(c)))
    fec.reassembler.expected = seqs[0]
    for kind, seq, datagram in events:
        if kind == "parity":
            fec.parity(datagram, 0.0)
        elif seq not in lost:
            fec.data(seq, datagram, 0.0)
    assert delivered == [datagrams[seq][HEADER_SIZE:] for seq in seqs]
    assert fec.stats.recovered == 4
