"""Reassembly's restart and replay rules (ddc/protocol/reassembly.py docstring), one test each:
a sender restarted without its StartUp is followed, captured packets sent again are never
delivered a second time, stragglers never resync."""

from __future__ import annotations

import random

from ddc.protocol import reassembly
from ddc.protocol.fragment import Sequence
from ddc.protocol.reassembly import RESYNC_LATE_RUN, Reassembler
from ddc.protocol.wire import SEQ_MODULO, MessageType
from tests.unit.test_protocol import MAX_CHUNK, feed, packets

PACKET = 100  # 91-byte payloads: a 250-byte chunk is 3 packets


def stream(count: int, start: int = 0, tag: bytes = b"c") -> tuple[list[bytes], list]:
    """`count` chunks of 3 packets each from seq `start`: (chunks, packets)."""
    sequence = Sequence(start)
    chunks = [tag + b"%05d" % i + b"." * 244 for i in range(count)]
    return chunks, [p for chunk in chunks for p in packets(chunk, PACKET, sequence)]


def started() -> Reassembler:
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    return reassembler


def test_a_replayed_burst_is_delivered_once_and_the_stream_goes_on_where_it_was():
    chunks, pkts = stream(120)
    reassembler = started()
    delivered = feed(reassembler, pkts[:301])  # 100 chunks and the first packet of chunk 100
    assert reassembler.in_chunk
    replay = pkts[30:150]  # 120 captured packets: 40 chunks sent again
    assert feed(reassembler, replay) == []
    delivered += feed(reassembler, pkts[301:])
    assert delivered == chunks
    stats = reassembler.stats
    assert stats.resyncs == 1 and stats.lost == 0 and stats.late == RESYNC_LATE_RUN - 1
    # the 32nd late packet resynced, the chunks completed after it were dropped as replayed
    assert stats.aborted == {"replayed": (150 - 30 - RESYNC_LATE_RUN) // 3}
    assert stats.delivered == 120


def test_a_replayed_heartbeat_and_burst_deliver_nothing_and_count_no_loss():
    chunks, pkts = stream(60)
    reassembler = started()
    delivered = feed(reassembler, pkts[:120])
    reassembler.observe_seq(120)
    delivered += feed(reassembler, pkts[120:150])
    reassembler.observe_seq(60)  # a HeartBeat captured long ago: resyncs at once
    assert reassembler.stats.resyncs == 1 and reassembler.expected == 60
    assert feed(reassembler, pkts[60:90]) == []  # the data captured after it
    reassembler.observe_seq(150)  # the genuine sender's next HeartBeat: back at the frontier
    delivered += feed(reassembler, pkts[150:])
    assert delivered == chunks
    assert reassembler.stats.lost == 0 and reassembler.stats.aborted == {"replayed": 10}


def test_a_genuine_packet_during_the_replay_takes_the_stream_back_with_its_chunk():
    chunks, pkts = stream(80)
    reassembler = started()
    delivered = feed(reassembler, pkts[:200])  # chunk 66 in progress (2 of its 3 packets)
    assert feed(reassembler, pkts[0:40]) == []  # replayed: resynced at the 32nd
    delivered += feed(reassembler, pkts[200:])  # its last packet at the frontier: completes it
    delivered += feed(reassembler, pkts[40:60])  # the rest of the replay: late again
    assert delivered == chunks
    stats = reassembler.stats
    # the 32nd late packet (seq 31) and the next one are the end of chunk 10: orphaned
    assert stats.lost == 0 and stats.orphaned == 2 and stats.delivered == 80
    assert stats.aborted == {"replayed": 2, "resync": 1}  # chunk 13's replayed beginning


def test_a_replay_of_the_latest_packets_changes_nothing():
    chunks, pkts = stream(40)
    reassembler = started()
    delivered = feed(reassembler, pkts[:110])  # chunk 36 in progress (2 of its 3 packets)
    assert feed(reassembler, pkts[60:110]) == []  # up to the last packet before the expected
    # resynced at seq 91, then in order up to the frontier with chunk 36's same beginning
    assert reassembler.stats.resyncs == 1 and reassembler.in_chunk
    delivered += feed(reassembler, pkts[110:])
    assert delivered == chunks and reassembler.stats.lost == 0
    assert reassembler.stats.aborted == {"replayed": 5}


def test_a_late_run_ending_at_the_expected_seq_is_no_resync():
    chunks, pkts = stream(40)
    reassembler = started()
    delivered = feed(reassembler, pkts[:110])
    assert feed(reassembler, pkts[110 - RESYNC_LATE_RUN : 110]) == []  # exactly the latest 32
    assert reassembler.stats.resyncs == 0 and reassembler.in_chunk
    delivered += feed(reassembler, pkts[110:])
    assert delivered == chunks and reassembler.stats.aborted == {}


def test_a_replay_reaching_the_frontier_in_order_completes_the_chunk_once():
    chunks, pkts = stream(50)
    reassembler = started()
    delivered = feed(reassembler, pkts[:100])  # chunk 33 in progress (its first packet)
    assert feed(reassembler, pkts[40:100]) == []  # replayed up to the frontier, in order
    delivered += feed(reassembler, pkts[100:])
    assert delivered == chunks
    assert reassembler.stats.aborted == {"replayed": 9} and reassembler.stats.lost == 0


def test_a_replay_after_a_shutdown_is_dropped_and_a_startup_starts_a_new_session():
    chunks, pkts = stream(50)
    reassembler = started()
    assert feed(reassembler, pkts) == chunks
    reassembler.observe_seq(150)
    reassembler.unsync("shutdown")
    assert feed(reassembler, pkts[:90]) == []  # the captured session, sent again
    assert reassembler.stats.aborted == {"replayed": 30}
    reassembler.reset()  # a restarted ingress: the same chunks are new data now
    assert feed(reassembler, pkts) == chunks


def test_a_sender_restarted_without_startup_is_followed_past_the_old_frontier():
    reassembler = started()
    old, old_pkts = stream(40)
    new, new_pkts = stream(60, tag=b"n")
    delivered = feed(reassembler, old_pkts[:119])  # old chunk 39 in progress when it died
    delivered += feed(reassembler, new_pkts)  # restarted at seq 0, StartUp lost
    assert delivered == old[:39] + new[RESYNC_LATE_RUN // 3 + 1 :]
    stats = reassembler.stats
    assert stats.resyncs == 1 and stats.late == RESYNC_LATE_RUN - 1 and stats.lost == 0
    # the new stream passed the old frontier (seq 119) in a chunk of its own: the old one is gone
    assert stats.aborted == {"resync": 1}


def test_a_restart_heartbeat_then_a_gap_in_the_new_stream_counts_only_real_loss():
    reassembler = started()
    _, old_pkts = stream(100)
    new, new_pkts = stream(30, tag=b"n")
    feed(reassembler, old_pkts)
    reassembler.observe_seq(300)
    reassembler.observe_seq(0)  # the restarted sender's first HeartBeat
    delivered = feed(reassembler, new_pkts[:30] + new_pkts[33:])  # chunk 10 lost
    assert delivered == new[:10] + new[11:]
    assert reassembler.stats.lost == 3 and reassembler.stats.resyncs == 1


def test_stragglers_of_a_gap_counted_lost_never_resync():
    chunks, pkts = stream(40)
    reassembler = started()
    delivered = feed(reassembler, pkts[:30] + pkts[72:])  # 42 packets lost in between
    assert reassembler.stats.lost == 42
    assert feed(reassembler, pkts[30:72]) == []  # they come after all, in order: too late
    stats = reassembler.stats
    assert stats.resyncs == 0 and stats.late == 42
    assert delivered == chunks[:10] + chunks[24:]


def test_scattered_late_duplicates_never_resync():
    chunks, pkts = stream(30)
    reassembler = started()
    delivered = feed(reassembler, pkts)
    duplicates = [pkts[i] for i in range(0, 90, 2)] + [pkts[5]] * 40  # no consecutive run
    assert feed(reassembler, duplicates) == []
    assert reassembler.stats.resyncs == 0 and reassembler.stats.late == len(duplicates)
    assert delivered == chunks


def test_delivered_digests_are_bounded(monkeypatch):
    monkeypatch.setattr(reassembly, "DELIVERED_MEMORY", 64)
    reassembler = started()
    sequence = Sequence()
    for i in range(1000):
        feed(reassembler, packets(b"%d" % i, 1472, sequence))
    assert len(reassembler._digests) + len(reassembler._older) <= 64
    assert reassembler.stats.delivered == 1000


def test_a_replay_older_than_the_memory_is_the_documented_limit(monkeypatch):
    monkeypatch.setattr(reassembly, "DELIVERED_MEMORY", 64)
    pkts = [p for i in range(200) for p in packets(b"%d" % i, 1472, Sequence(i))]
    recent = started()
    feed(recent, pkts)
    assert feed(recent, pkts[160:]) == []  # remembered: resynced at seq 191, 191..199 dropped
    assert recent.stats.resyncs == 1 and recent.stats.aborted == {"replayed": 9}
    old = started()
    feed(old, pkts)
    again = feed(old, pkts[:100])
    assert again == [b"%d" % i for i in range(RESYNC_LATE_RUN - 1, 100)]  # forgotten: again


def test_digest_covers_length_and_both_ends():
    digest = reassembly.digest
    body = bytes(1000)
    assert digest(body) == digest(bytearray(body)) == digest(memoryview(body))
    assert digest(body) != digest(body + b"\0")
    assert digest(b"x" + body[1:]) != digest(body) != digest(body[:-1] + b"x")
    assert MessageType.DATA_FIRST  # the module's constants stay importable


def test_junk_heartbeats_far_ahead_neither_count_loss_nor_push_the_receiver_ahead():
    # issue 14: random HeartBeat seqs from the pinned address counted 3.35e12 lost and made
    # the genuine stream late (on the old code: lost 5.1e10, 220 packets late, 21 resyncs)
    rng = random.Random(1)
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    sequence = Sequence()
    chunks = [b"%d" % i for i in range(600)]
    delivered = feed(reassembler, [p for c in chunks[:100] for p in packets(c, 1472, sequence)])
    for block in range(50):
        junk = (sequence.next + 70_000 + rng.randrange(2**31)) % SEQ_MODULO
        reassembler.observe_seq(junk)
        part = chunks[100 + 10 * block : 110 + 10 * block]
        delivered += feed(reassembler, [p for c in part for p in packets(c, 1472, sequence)])
    assert delivered == chunks
    stats = reassembler.stats
    assert (stats.lost, stats.late, stats.resyncs) == (0, 0, 0)
    assert stats.claims_refused == 49  # each replaced by the next; the last one is still pending


def test_a_far_ahead_heartbeat_counts_once_an_idle_senders_next_heartbeat_confirms_it():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    sequence = Sequence()
    feed(reassembler, packets(b"first", 1472, sequence))
    reassembler.observe_seq(100_001)  # 100,000 packets lost at the tail of the stream
    assert reassembler.stats.lost == 0  # a claim so far
    reassembler.observe_seq(100_001)  # the idle sender's next HeartBeat: the same seq
    assert reassembler.stats.lost == 100_000 and reassembler.expected == 100_001
    assert feed(reassembler, packets(b"next", 1472, Sequence(100_001))) == [b"next"]
    assert reassembler.stats.claims_refused == 0


def test_a_data_packet_past_a_far_ahead_heartbeat_counts_its_own_gap():
    reassembler = Reassembler(MAX_CHUNK)
    reassembler.reset()
    feed(reassembler, packets(b"first", 1472, Sequence()))
    reassembler.observe_seq(200_000)
    assert feed(reassembler, packets(b"later", 1472, Sequence(200_005))) == [b"later"]
    assert reassembler.stats.lost == 200_004 and reassembler.stats.claims_refused == 0
