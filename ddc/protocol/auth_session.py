"""The egress's authentication state machine: which datagrams belong to the session it follows.

Rules (docs/wire-protocol.md "Authentication", docs/security.md):

1. A datagram must end in a trailer: its size must be 9 + length + 17, else ``missing`` (an
   unsigned v1 datagram, or one whose trailer cannot be located). A key id the key set does not
   hold is ``unknown_key``; a tag that does not verify is ``bad_tag``.
2. A StartUp is verified with the session id in its own payload. A valid StartUp of the current
   session (its burst, or a repeat) is accepted and changes nothing. A valid StartUp of another
   session starts a new session (NEW_SESSION) only when its start_time_ms is greater than the
   current session's and, with max_clock_skew > 0, within max_clock_skew of the egress clock;
   otherwise it is ``stale_session``. An authenticated StartUp whose descriptor contradicts the
   egress's expectations (envelope, max_packet_size, FEC), or is malformed, refuses its session
   (REFUSED_SESSION, `mismatch` names the contradiction); the current session stays.
3. Every other datagram is verified with the current session's id. Before any session, and after
   the current session's Shutdown (except the rest of that Shutdown burst), it is
   ``stale_session``. A datagram that verifies under a recently superseded, stale or refused
   session (the last OTHER_SESSIONS of them) is ``stale_session`` too, and counted in
   `second_sender` when that session was once or would have been a sender's live one; otherwise
   a tag that does not verify is ``bad_tag``.
4. Within a session each data sequence number (DataFirst, Data) is accepted at most once, and
   each parity packet (group's first seq, index) at most once: a sliding window of `window`
   (>= 4096) sequence numbers per kind; a repeat, or a seq further behind the newest than the
   window, is ``replay``. HeartBeats and Shutdowns carry no sequence number of their own and are
   not windowed (the reassembler bounds what a repeated HeartBeat can do).
5. `reload(keys)` swaps the key set at once: sessions and replay windows stay; a key id no
   longer in the set is ``unknown_key`` from the next datagram on.
6. Repeats and resuming (docs/security.md "A restarted egress"): the ingress repeats its
   session's StartUp with every HeartBeat, its descriptor carrying ``repeat_ms`` (the sender's
   clock when sent) and ``seq`` (its next data seq). A repeat of the current session is accepted
   (REPEAT) only when its repeat_ms is newer than every repeat accepted before, else ``replay``;
   a StartUp of a closed session is ``stale_session``. With no session yet, a repeat resumes
   its session (RESUMED_SESSION) only when it is fresher than `resume` says: the same session
   id and start_time_ms as the persisted ResumePoint and a newer repeat_ms, or, with no
   persisted session (session_id None), a repeat_ms newer than `resume.repeat_ms` (the egress's
   start time). A resumed session accepts no data or parity packet before the repeat's seq.
   A new session needs a start_time_ms greater than `resume.start_time_ms` too.
7. Held, not refused, before the first session (an egress that started after the ingress's
   StartUp burst): until the egress has a session, a datagram that no known session verifies is
   held (a copy, with the caller's `origin`; at most `window` datagrams and HOLD_BYTES, the rest
   is ``stale_session``), verdict HELD. When the first session begins, `release()` hands them
   back, in arrival order, to be checked again under it, if the egress can never have delivered
   any of them: a NEW_SESSION, or a session resumed while `resume.fresh` (the state directory has
   never held a session). Such a resumed session's windows then start `window - 1` sequence
   numbers before the repeat's seq instead of at it. After a session resumed from a persisted
   one (its data before the repeat may have been delivered before the restart), the held
   datagrams are ``stale_session``.

`failures` counts refusals by reason (the label of ddc_egress_auth_failures_total).
"""

from __future__ import annotations

import hmac
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ddc.protocol.auth import (
    SESSION_ID_SIZE,
    TRAILER_SIZE,
    Buffer,
    StartUpInfo,
    Verifier,
    compute_tag,
    decode_startup,
)
from ddc.protocol.auth_keys import KeySet
from ddc.protocol.wire import HEADER, HEADER_SIZE, SEQ_MODULO, MessageType, seq_distance

MISSING = "missing"
UNKNOWN_KEY = "unknown_key"
BAD_TAG = "bad_tag"
REPLAY = "replay"
STALE_SESSION = "stale_session"
REASONS = (MISSING, UNKNOWN_KEY, BAD_TAG, REPLAY, STALE_SESSION)

ACCEPTED = "accepted"
NEW_SESSION = "new_session"
REFUSED_SESSION = "refused_session"
REPEAT = "repeat"  # a fresh repeat of the current session's StartUp (accepted)
RESUMED_SESSION = "resumed_session"
HELD = "held"  # no session yet: judged when the first one begins (rule 7)
HOLD_BYTES = 32 * 1024 * 1024

MIN_WINDOW = 4096
OTHER_SESSIONS = 4
PARITY = 6
PARITY_INDEX_OFFSET = HEADER_SIZE + 3  # scheme, K, M, index (ddc.protocol.fec)
DATA_KINDS = (MessageType.DATA_FIRST, MessageType.DATA)


class ReplayWindow:
    """Which (seq, sub) pairs were seen, for the last `size` sequence numbers (u32, wrapping).

    A ring of `size` slots (a power of two) holds the seq last recorded in slot seq % size and a
    bit per sub-index (0..255, the parity index; 0 for data). A seq more than `size - 1` behind
    the newest one is refused: nothing that old can be told apart from a replay. O(1) per packet.
    """

    def __init__(self, size: int = MIN_WINDOW) -> None:
        if size < MIN_WINDOW or size & (size - 1):
            raise ValueError(f"window must be a power of two >= {MIN_WINDOW}, got {size}")
        self.size = size
        self._mask = size - 1
        self.top: int | None = None
        self._seqs = array("q", [-1]) * size
        self._bits = [0] * size

    def accept(self, seq: int, sub: int = 0) -> bool:
        """True the first time (seq, sub) is seen within the window, False for a replay."""
        top = self.top
        if top is None:
            self.top = seq
        else:
            ahead = seq_distance(seq, top)
            if ahead <= -self.size:
                return False
            if ahead > 0:
                self.top = seq
        slot = seq & self._mask
        bit = 1 << sub
        if self._seqs[slot] == seq:
            if self._bits[slot] & bit:
                return False
            self._bits[slot] |= bit
        else:
            self._seqs[slot] = seq
            self._bits[slot] = bit
        return True

    def start_at(self, seq: int) -> None:
        """Refuse everything before `seq` (a resumed session): the window is full up to it."""
        every = (1 << 256) - 1
        for back in range(self.size, 0, -1):
            old = (seq - back) % SEQ_MODULO
            self._seqs[old & self._mask] = old
            self._bits[old & self._mask] = every
        self.top = (seq - 1) % SEQ_MODULO


@dataclass(frozen=True)
class ResumePoint:
    """What a restarted egress knows of the session before it (ddc.egress.auth_state)."""

    session_id: bytes | None  # None: nothing persisted
    start_time_ms: int  # a new session must be newer
    repeat_ms: int  # a resuming repeat must be newer
    fresh: bool = False  # the state directory has never held a session: nothing was delivered


@dataclass(frozen=True)
class Expectations:
    """What the egress config says about the link; None = no opinion."""

    envelope: str | None = None
    max_packet_size: int | None = None  # the largest datagram the egress accepts
    fec: bool = True  # whether this egress repairs with FEC parity


def contradiction(desc: dict[str, Any], expect: Expectations) -> str | None:
    """The first contradiction between a StartUp descriptor and the egress config, named."""
    if expect.envelope is not None and desc["envelope"] != expect.envelope:
        return (
            f"envelope: the ingress sends {desc['envelope']!r}, "
            f"this egress is configured for {expect.envelope!r}"
        )
    if expect.max_packet_size is not None and desc["max_packet_size"] > expect.max_packet_size:
        return (
            f"max_packet_size: the ingress sends up to {desc['max_packet_size']} bytes, "
            f"this egress accepts {expect.max_packet_size}"
        )
    if not expect.fec and desc["fec"] is not None:
        return f"fec: the ingress sends FEC {desc['fec']}, this egress does not decode FEC"
    return None


class Session:
    """One sender session: its id, StartUp and replay windows."""

    def __init__(self, info: StartUpInfo, keys: KeySet, window: int) -> None:
        self.info = info
        self.session_id = info.session_id
        self.start_time_ms = info.start_time_ms
        self.verifier = Verifier(keys, info.session_id)
        self.data = ReplayWindow(window)
        self.parity = ReplayWindow(window)
        self.closed = False  # a Shutdown of this session arrived
        self.repeat_ms = repeat_of(info)[0]  # the newest repeat accepted (0: none yet)


def repeat_of(info: StartUpInfo) -> tuple[int, int]:
    """(repeat_ms, seq) of a repeated StartUp; repeat_ms 0 for the first burst."""
    desc = info.descriptor
    repeat_ms, seq = desc.get("repeat_ms"), desc.get("seq")
    if isinstance(repeat_ms, int) and isinstance(seq, int) and repeat_ms > 0:
        return repeat_ms, seq % SEQ_MODULO
    return 0, 0


class AuthReceiver:
    """Applies the rules above to each datagram; `check` returns ACCEPTED, NEW_SESSION,
    REFUSED_SESSION or a reason of REASONS (refused, counted in `failures`)."""

    def __init__(
        self,
        keys: KeySet,
        expect: Expectations | None = None,
        *,
        max_clock_skew: float = 600.0,
        window: int = MIN_WINDOW,
        clock: Callable[[], float] = time.time,
        resume: ResumePoint | None = None,
    ) -> None:
        self.keys = keys
        self.resume = resume
        self.expect = expect or Expectations()
        self.max_clock_skew_ms = int(max_clock_skew * 1000)
        self.window = window
        self.clock = clock
        self.session: Session | None = None
        self.failures: Counter[str] = Counter()
        self.sessions_started = 0
        self.sessions_refused = 0
        self.second_sender = 0  # datagrams of another live sender's session
        self.mismatch: str | None = None  # the last descriptor contradiction, for /healthz
        # other sessions seen lately: id → (verifier, counts as a second sender)
        self._others: OrderedDict[bytes, tuple[Verifier, bool]] = OrderedDict()
        self.held: list[tuple[bytes, object]] = []  # rule 7: (datagram, origin)
        self.held_bytes = 0
        self._releasable = False  # whether the first session may take the held datagrams

    def reload(self, keys: KeySet) -> None:
        """A new key set (SIGHUP): takes effect from the next datagram; sessions stay."""
        self.keys = keys
        if self.session is not None:
            self.session.verifier = Verifier(keys, self.session.session_id)
        for session_id, (_, second) in list(self._others.items()):
            self._others[session_id] = (Verifier(keys, session_id), second)

    def _refuse(self, reason: str) -> str:
        self.failures[reason] += 1
        return reason

    def _remember(self, session_id: bytes, second_sender: bool) -> None:
        if session_id in self._others:
            self._others.move_to_end(session_id)
            return
        self._others[session_id] = (Verifier(self.keys, session_id), second_sender)
        self._others.move_to_end(session_id)
        while len(self._others) > OTHER_SESSIONS:
            self._others.popitem(last=False)

    def release(self) -> tuple[list[tuple[bytes, object]], int]:
        """Rule 7, after the first session began: (the held datagrams to check again, how many
        were refused as stale_session instead)."""
        held, self.held, self.held_bytes = self.held, [], 0
        if self._releasable:
            return held, 0
        self.failures[STALE_SESSION] += len(held)
        return [], len(held)

    def check(self, datagram: Buffer, size: int | None = None, origin: object = None) -> str:
        """The verdict on datagram[:size]; the caller strips TRAILER_SIZE bytes when accepted."""
        if size is None:
            size = len(datagram)
        if size < HEADER_SIZE + TRAILER_SIZE:
            return self._refuse(MISSING)
        kind, seq, length, _ = HEADER.unpack_from(datagram)
        if size != HEADER_SIZE + length + TRAILER_SIZE:
            return self._refuse(MISSING)
        key_id = datagram[size - TRAILER_SIZE]
        if key_id not in self.keys.keys:
            return self._refuse(UNKNOWN_KEY)
        if kind == MessageType.STARTUP:
            return self._startup(datagram, size, key_id)
        session = self.session
        if session is None or not session.verifier.valid(datagram, size):
            return self._other_session(datagram, size, origin)
        if session.closed and kind != MessageType.SHUTDOWN:
            return self._refuse(STALE_SESSION)
        if kind in DATA_KINDS:
            if not session.data.accept(seq):
                return self._refuse(REPLAY)
        elif kind == PARITY:
            index = datagram[PARITY_INDEX_OFFSET] if length > 3 else 0
            if not session.parity.accept(seq, index):
                return self._refuse(REPLAY)
        elif kind == MessageType.SHUTDOWN:
            session.closed = True
        return ACCEPTED

    def _other_session(self, datagram: Buffer, size: int, origin: object) -> str:
        for verifier, second in self._others.values():
            if verifier.valid(datagram, size):
                if second:
                    self.second_sender += 1
                return self._refuse(STALE_SESSION)
        if self.session is None:
            if len(self.held) >= self.window or self.held_bytes + size > HOLD_BYTES:
                return self._refuse(STALE_SESSION)
            self.held.append((bytes(datagram[:size]), origin))
            self.held_bytes += size
            return HELD
        return self._refuse(BAD_TAG)

    def _startup(self, datagram: Buffer, size: int, key_id: int) -> str:
        body_end = size - TRAILER_SIZE
        view = memoryview(datagram)
        if body_end < HEADER_SIZE + SESSION_ID_SIZE:
            return self._refuse(BAD_TAG)  # no session id to verify it with
        session_id = bytes(view[HEADER_SIZE : HEADER_SIZE + SESSION_ID_SIZE])
        tag = compute_tag(self.keys.keys[key_id], session_id, view[:body_end], key_id)
        if not hmac.compare_digest(tag, view[body_end + 1 : size]):
            return self._refuse(BAD_TAG)
        current = self.session
        info = decode_startup(view[HEADER_SIZE:body_end])
        if isinstance(info, str):
            return self._refuse_session(session_id, f"malformed StartUp: {info}")
        if current is not None and session_id == current.session_id:
            if info.start_time_ms != current.start_time_ms or current.closed:
                return self._refuse(STALE_SESSION)
            repeat_ms = repeat_of(info)[0]
            if not repeat_ms:
                return ACCEPTED  # the rest of its burst: changes nothing
            if repeat_ms <= current.repeat_ms:
                return self._refuse(REPLAY)
            current.repeat_ms = repeat_ms
            return REPEAT
        if current is not None and info.start_time_ms <= current.start_time_ms:
            self._remember(session_id, second_sender=True)
            return self._refuse(STALE_SESSION)
        resume = self.resume if current is None else None
        if resume is not None and info.start_time_ms <= resume.start_time_ms:
            return self._resume(info, resume)
        skew = self.max_clock_skew_ms
        if skew and abs(info.start_time_ms - int(self.clock() * 1000)) > skew:
            return self._refuse(STALE_SESSION)
        problem = contradiction(info.descriptor, self.expect)
        if problem is not None:
            return self._refuse_session(session_id, problem)
        if current is not None:
            self._remember(current.session_id, second_sender=not current.closed)
        self._releasable = current is None
        self.session = Session(info, self.keys, self.window)
        self.resume = None
        self.sessions_started += 1
        return NEW_SESSION

    def _resume(self, info: StartUpInfo, resume: ResumePoint) -> str:
        """No session since the egress started: may this repeat resume its session?"""
        repeat_ms, seq = repeat_of(info)
        same = resume.session_id is None or (
            resume.session_id == info.session_id and resume.start_time_ms == info.start_time_ms
        )
        if not same or repeat_ms <= resume.repeat_ms:
            return self._refuse(STALE_SESSION)
        problem = contradiction(info.descriptor, self.expect)
        if problem is not None:
            return self._refuse_session(info.session_id, problem)
        session = Session(info, self.keys, self.window)
        self._releasable = resume.fresh
        if resume.fresh:
            seq = (seq - self.window + 1) % SEQ_MODULO
        session.data.start_at(seq)
        session.parity.start_at(seq)
        self.session = session
        self.resume = None
        self.sessions_started += 1
        return RESUMED_SESSION

    def _refuse_session(self, session_id: bytes, problem: str) -> str:
        if session_id not in self._others:
            self.sessions_refused += 1
            self._remember(session_id, second_sender=False)
        self.mismatch = problem
        return REFUSED_SESSION
