"""The egress's authentication state machine (ddc.protocol.auth_session): each rule of its
docstring, the replay window against a model, key reload."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddc.protocol import auth
from ddc.protocol.auth_keys import KeySet
from ddc.protocol.auth_session import (
    ACCEPTED,
    BAD_TAG,
    HELD,
    MIN_WINDOW,
    MISSING,
    NEW_SESSION,
    REFUSED_SESSION,
    REPEAT,
    REPLAY,
    RESUMED_SESSION,
    STALE_SESSION,
    UNKNOWN_KEY,
    AuthReceiver,
    Expectations,
    ReplayWindow,
    ResumePoint,
)
from ddc.protocol.fec import encode_group
from ddc.protocol.wire import MessageType, encode_header

K1, K2 = b"\x11" * 32, b"\x22" * 32
KEYS = KeySet.of({1: K1})
NOW = 1_800_000_000.0  # the egress clock in these tests (seconds)
T0 = int(NOW * 1000)


class Sender:
    """A signing ingress session built from the module under test (the interop tests check the
    format independently)."""

    def __init__(self, keys=KEYS, start_ms=T0, envelope="raw", fec=None, sid=None, size=1472):
        self.sid = sid or auth.new_session_id()
        self.signer = auth.Signer(keys, self.sid)
        self.start_ms = start_ms
        self.desc = auth.descriptor("pair", envelope, size, fec)

    def startup(self, repeat_ms: int = 0, seq: int = 0) -> bytes:
        desc = {**self.desc, "repeat_ms": repeat_ms, "seq": seq} if repeat_ms else self.desc
        payload = auth.encode_startup(self.sid, self.start_ms, desc)
        return self.signer.sign(encode_header(MessageType.STARTUP, 0, len(payload)) + payload)

    def data(self, seq: int, payload: bytes = b"x") -> bytes:
        return self.signer.sign(encode_header(MessageType.DATA_FIRST, seq, len(payload)) + payload)

    def control(self, kind: int, seq: int) -> bytes:
        return self.signer.sign(encode_header(kind, seq, 0))


def receiver(**kwargs) -> AuthReceiver:
    kwargs.setdefault("clock", lambda: NOW)
    return AuthReceiver(kwargs.pop("keys", KEYS), **kwargs)


def test_a_session_starts_with_its_startup_and_its_burst_changes_nothing():
    rx, tx = receiver(), Sender()
    assert rx.check(tx.data(0)) == HELD  # nothing before a session: held (rule 7)
    assert rx.check(tx.startup()) == NEW_SESSION
    assert rx.check(tx.startup()) == ACCEPTED
    assert rx.check(tx.data(0)) == ACCEPTED
    assert rx.check(tx.control(MessageType.HEARTBEAT, 1)) == ACCEPTED
    assert rx.sessions_started == 1 and rx.session.info.descriptor == tx.desc
    assert rx.failures == {}


def test_missing_unknown_key_and_bad_tag():
    rx, tx = receiver(), Sender()
    rx.check(tx.startup())
    unsigned = encode_header(MessageType.DATA_FIRST, 1, 1) + b"x"
    assert rx.check(unsigned) == MISSING
    assert rx.check(b"\x03" * 12) == MISSING
    assert rx.check(tx.data(1)[:-1]) == MISSING  # size no longer fits the length field
    other_key = Sender(KeySet.of({9: K1}), sid=tx.sid)
    assert rx.check(other_key.data(1)) == UNKNOWN_KEY
    forged = bytearray(tx.data(1, b"abc"))
    forged[10] ^= 0xFF
    assert rx.check(bytes(forged)) == BAD_TAG
    wrong_key = Sender(KeySet.of({1: K2}), sid=tx.sid)
    assert rx.check(wrong_key.data(1)) == BAD_TAG
    assert rx.check(wrong_key.startup()) == BAD_TAG
    assert rx.failures == {MISSING: 3, UNKNOWN_KEY: 1, BAD_TAG: 3}
    assert rx.check(tx.data(1)) == ACCEPTED


def test_each_data_seq_and_parity_packet_is_accepted_once():
    rx, tx = receiver(), Sender()
    rx.check(tx.startup())
    assert [rx.check(tx.data(s)) for s in (0, 1, 0, 2, 1)] == [
        ACCEPTED,
        ACCEPTED,
        REPLAY,
        ACCEPTED,
        REPLAY,
    ]
    data = [encode_header(MessageType.DATA_FIRST, s, 1) + b"x" for s in range(4)]
    parity = [tx.signer.sign(p) for p in encode_group(data, 0, 2)]
    # parity is keyed by (group's first seq, index), independent of data seq 0's window slot
    assert [rx.check(p) for p in parity] == [ACCEPTED, ACCEPTED]
    assert [rx.check(p) for p in parity] == [REPLAY, REPLAY]
    assert rx.failures == {REPLAY: 4}


def test_a_newer_startup_supersedes_and_an_older_one_is_stale():
    rx, old, new = receiver(), Sender(start_ms=T0 - 5000), Sender()
    assert rx.check(old.startup()) == NEW_SESSION
    assert rx.check(old.data(0)) == ACCEPTED
    assert rx.check(new.startup()) == NEW_SESSION
    assert rx.check(new.data(0)) == ACCEPTED  # a fresh window
    # the old session, replayed or still running: refused, and named as a second sender
    assert rx.check(old.startup()) == STALE_SESSION
    assert rx.check(old.data(1)) == STALE_SESSION
    assert rx.second_sender == 1
    same_time = Sender(start_ms=new.start_ms)
    assert rx.check(same_time.startup()) == STALE_SESSION  # must be greater, not equal
    assert rx.check(same_time.data(0)) == STALE_SESSION
    assert rx.session.session_id == new.sid and rx.sessions_started == 2


def test_clock_skew_bounds_new_sessions_and_zero_turns_it_off():
    rx = receiver(max_clock_skew=600)
    assert rx.check(Sender(start_ms=T0 - 601_000).startup()) == STALE_SESSION
    assert rx.check(Sender(start_ms=T0 + 601_000).startup()) == STALE_SESSION
    assert rx.check(Sender(start_ms=T0 + 599_000).startup()) == NEW_SESSION
    rx = receiver(max_clock_skew=0)
    assert rx.check(Sender(start_ms=1).startup()) == NEW_SESSION


def test_shutdown_closes_the_session():
    rx, tx = receiver(), Sender()
    rx.check(tx.startup())
    shutdown = tx.control(MessageType.SHUTDOWN, 5)
    assert rx.check(shutdown) == ACCEPTED
    assert rx.check(shutdown) == ACCEPTED  # the rest of the burst
    assert rx.check(tx.control(MessageType.HEARTBEAT, 5)) == STALE_SESSION  # replayed HeartBeat
    assert rx.check(tx.data(9)) == STALE_SESSION
    restarted = Sender(start_ms=T0 + 1)
    assert rx.check(restarted.startup()) == NEW_SESSION
    assert rx.check(tx.data(10)) == STALE_SESSION and rx.second_sender == 0  # closed: not live


@pytest.mark.parametrize(
    ("expect", "sender", "named"),
    [
        (Expectations(envelope="records"), {"envelope": "raw"}, "envelope"),
        (Expectations(max_packet_size=1472), {"size": 8972}, "max_packet_size"),
        (Expectations(fec=False), {"fec": (32, 8)}, "fec"),
    ],
)
def test_a_contradicting_descriptor_refuses_its_session(expect, sender, named):
    rx = receiver(expect=expect)
    good = Sender(envelope=expect.envelope or "raw", start_ms=T0 - 10)
    assert rx.check(good.startup()) == NEW_SESSION
    bad = Sender(**sender)
    assert rx.check(bad.startup()) == REFUSED_SESSION
    assert rx.check(bad.startup()) == REFUSED_SESSION
    assert rx.mismatch is not None and rx.mismatch.startswith(named)
    assert rx.sessions_refused == 1
    assert rx.check(bad.data(0)) == STALE_SESSION
    assert rx.session.session_id == good.sid  # the current session stays


def test_reload_adds_and_removes_keys_without_losing_the_session():
    rx = receiver()
    tx1 = Sender()
    rx.check(tx1.startup())
    rx.check(tx1.data(0))
    both = KeySet.of({1: K1, 2: K2})
    rx.reload(both)
    assert rx.check(tx1.data(1)) == ACCEPTED
    tx2 = Sender(KeySet.of({2: K2}), sid=tx1.sid)  # same session, the ingress switched keys
    assert rx.check(tx2.data(2)) == ACCEPTED
    assert rx.check(tx2.data(0)) == REPLAY  # the window survived the reload
    rx.reload(KeySet.of({2: K2}))
    assert rx.check(tx1.data(3)) == UNKNOWN_KEY
    assert rx.check(tx2.data(3)) == ACCEPTED


def test_window_refuses_what_is_older_than_it_can_remember():
    window = ReplayWindow(4096)
    assert window.accept(10_000)
    assert window.accept(10_000 - 4095)
    assert not window.accept(10_000 - 4096)
    assert window.accept(2**32 - 1) is False  # 10_001 behind, across nothing: too old
    with pytest.raises(ValueError):
        ReplayWindow(1000)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 2**32 - 1),
    steps=st.lists(
        st.tuples(
            st.one_of(st.integers(-5000, 300), st.sampled_from([-4097, -4096, -4095, 0])),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=400,
    ),
)
def test_window_matches_a_model(start, steps):
    """Against an unbounded model: accepted iff never seen and less than 4096 behind the
    newest seq, across the 2^32 wrap."""
    window = ReplayWindow(4096)
    seen: set[tuple[int, int]] = set()
    top = None
    for offset, sub in steps:
        value = (top if top is not None else 0) + offset  # unbounded sequence position
        expected = (value, sub) not in seen and (top is None or value > top - 4096)
        assert window.accept((start + value) % 2**32, sub) is expected
        if expected:
            seen.add((value, sub))
            top = value if top is None else max(top, value)


def test_repeats_of_the_startup_must_be_fresher_each_time():
    rx, tx = receiver(), Sender()
    assert rx.check(tx.startup()) == NEW_SESSION
    assert rx.check(tx.startup(T0 + 1000, 40)) == REPEAT
    assert rx.check(tx.startup(T0 + 1000, 40)) == REPLAY  # the same repeat again
    assert rx.check(tx.startup(T0 + 500, 20)) == REPLAY  # an older one
    assert rx.check(tx.startup(T0 + 2000, 80)) == REPEAT
    assert rx.check(tx.control(MessageType.SHUTDOWN, 80)) == ACCEPTED
    assert rx.check(tx.startup()) == STALE_SESSION  # a closed session does not come back
    assert rx.check(tx.startup(T0 + 3000, 80)) == STALE_SESSION


def test_a_restarted_egress_resumes_the_persisted_session_from_a_fresher_repeat_only():
    tx = Sender()
    resume = ResumePoint(tx.sid, T0, T0 + 2000)  # what the egress persisted before it stopped
    rx = receiver(resume=resume)
    assert rx.check(tx.startup()) == STALE_SESSION  # the first burst, replayed
    assert rx.check(tx.startup(T0 + 2000, 100)) == STALE_SESSION  # the last repeat it saw
    assert rx.check(tx.data(150)) == HELD  # no session yet
    assert rx.check(tx.startup(T0 + 3000, 200)) == RESUMED_SESSION
    assert rx.check(tx.data(199)) == REPLAY  # sent before the repeat: maybe delivered already
    assert rx.check(tx.data(200)) == ACCEPTED
    assert rx.check(tx.data(200)) == REPLAY
    assert rx.check(tx.startup(T0 + 4000, 201)) == REPEAT
    other = Sender(sid=b"\x07" * 8)  # another session of the same start time: not resumed
    assert receiver(resume=resume).check(other.startup(T0 + 3000, 5)) == STALE_SESSION


def test_without_a_persisted_session_only_what_was_sent_after_the_egress_started_counts():
    resume = ResumePoint(None, T0, T0)  # nothing persisted: the egress started at T0
    old = Sender(start_ms=T0 - 60_000)
    rx = receiver(resume=resume)
    assert rx.check(old.startup()) == STALE_SESSION  # a session from before the restart
    assert rx.check(old.startup(T0 - 1, 10)) == STALE_SESSION  # a repeat from before it
    assert rx.check(old.startup(T0 + 1000, 10)) == RESUMED_SESSION  # sent after: resumes
    assert receiver(resume=resume).check(Sender(start_ms=T0 + 5).startup()) == NEW_SESSION


def test_a_fresh_egress_that_missed_the_startup_delivers_what_came_before_the_repeat():
    resume = ResumePoint(None, T0, T0, fresh=True)  # a state directory that never held a session
    tx = Sender(start_ms=T0 - 5000)  # the ingress started before the egress
    rx = receiver(resume=resume)
    assert [rx.check(tx.data(seq), origin=seq) for seq in (95, 96, 97)] == [HELD] * 3
    assert rx.failures == {}  # held, not yet refused
    assert rx.check(tx.startup(T0 + 500, 98)) == RESUMED_SESSION
    held, refused = rx.release()
    assert [origin for _, origin in held] == [95, 96, 97] and refused == 0
    assert rx.release() == ([], 0)
    assert [rx.check(datagram) for datagram, _ in held] == [ACCEPTED] * 3
    assert rx.check(tx.data(96)) == REPLAY  # each still once
    assert rx.check(tx.data(98)) == ACCEPTED
    assert rx.check(tx.data(98 - MIN_WINDOW)) == REPLAY  # older than the window reaches


def test_a_new_session_takes_what_was_held_before_its_startup():
    tx, rx = Sender(), receiver(resume=ResumePoint(b"\x01" * 8, T0 - 9000, T0 - 8000))
    assert rx.check(tx.data(0)) == HELD  # overtook its StartUp
    assert rx.check(tx.startup()) == NEW_SESSION
    held, refused = rx.release()
    assert [rx.check(datagram) for datagram, _ in held] == [ACCEPTED] and refused == 0


def test_held_datagrams_are_refused_when_the_persisted_session_resumes():
    tx = Sender()
    rx = receiver(resume=ResumePoint(tx.sid, T0, T0 + 2000))
    assert rx.check(tx.data(150)) == HELD  # delivered before the restart, or not: unknowable
    assert rx.check(tx.startup(T0 + 3000, 200)) == RESUMED_SESSION
    assert rx.release() == ([], 1)
    assert rx.failures == {STALE_SESSION: 1}
    assert rx.check(tx.data(150)) == REPLAY


def test_the_hold_is_bounded_and_ends_with_the_first_session():
    tx, rx = Sender(start_ms=T0 + 5), receiver(resume=ResumePoint(None, T0, T0, fresh=True))
    verdicts = [rx.check(tx.data(seq)) for seq in range(MIN_WINDOW + 2)]
    assert verdicts.count(HELD) == MIN_WINDOW and rx.failures == {STALE_SESSION: 2}
    assert rx.check(tx.startup()) == NEW_SESSION
    assert len(rx.release()[0]) == MIN_WINDOW
    assert rx.check(Sender().data(1)) == BAD_TAG  # a session exists: nothing is held any more
    assert rx.held == []
