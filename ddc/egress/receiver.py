"""The egress's hot loop: datagram → auth → sender check → header check → FEC hold → reassembly.

Authentication on (`auth`, ddc/egress/auth_gate.py): every datagram is verified first; a refused
one is counted there and goes no further; an accepted one continues without its trailer, from
whatever address the session's datagrams come from (the session is the pinned sender). Only
a new session's StartUp resets the sequence; a resumed session (a restarted egress) resyncs at
the next DataFirst; a repeat of the session's StartUp is a sign of life.

FEC is always decoded (parity is self-describing; a sender without FEC costs a little
bookkeeping and no latency): every data, parity and HeartBeat packet goes through the
FecReceiver (routing table in ddc/protocol/fec_receive.py), which drives the Reassembler. `poll`
(the egress's FEC timer greenlet) enforces the hold's time bounds. `lock` keeps the timer and the
receive loop out of each other: either may block in `deliver` (the chunk queue is full).
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable

import gevent
import gevent.lock

from ddc.egress.auth_gate import AuthGate
from ddc.egress.link import LinkState
from ddc.logs import ThrottledLog
from ddc.netio import UdpSocket
from ddc.protocol.auth import TRAILER_SIZE
from ddc.protocol.auth_session import NEW_SESSION, RESUMED_SESSION
from ddc.protocol.fec_receive import FecReceiver
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.wire import MessageType, parse_header
from ddc.units import format_hostport

log = logging.getLogger(__name__)

STARTUP = MessageType.STARTUP
HEARTBEAT = MessageType.HEARTBEAT
DATA_FIRST = MessageType.DATA_FIRST
DATA = MessageType.DATA
SHUTDOWN = MessageType.SHUTDOWN
PARITY = MessageType.PARITY
YIELD_EVERY = 32
# An empty socket is looked at again after RECEIVE_PAUSE before the receiver waits for it:
# at moderate rates a wake-up per datagram (the hub's poll, two greenlet switches) had cost
# more than handling it. The kernel buffer holds what arrives meanwhile (125 KB of a 1 Gbit/s
# line); a datagram after a quiet spell is still read at once.
RECEIVE_PAUSE = 0.001
# a StartUp this soon after the last one, finding the receiver already reset, is the same burst
STARTUP_HOLDOFF = 0.5
FOREIGN_LOG_INTERVAL = 5.0
# how long past its deadline the FEC hold may keep waiting while datagrams wait in the socket
MAX_POLL_DEFER = 1.0


class Receiver:
    """Counts every datagram exactly once: received (by type), malformed (by reason) or foreign."""

    def __init__(
        self,
        udp: UdpSocket,
        link: LinkState,
        reassembler: Reassembler,
        deliver: Callable[[bytes | bytearray | memoryview], None],
        fec: FecReceiver | None = None,
        auth: AuthGate | None = None,
    ) -> None:
        self.udp = udp
        self.auth = auth
        self.link = link
        self.reassembler = reassembler
        self.deliver = deliver
        self.fec = fec or FecReceiver(reassembler, deliver)
        self.lock = gevent.lock.Semaphore()
        self.received = [0] * (max(MessageType) + 1)  # by message type
        self.bytes = 0
        self.malformed: Counter[str] = Counter()
        self.foreign = 0
        self.startups = 0
        self._last_startup = -1e9
        self._foreign_log = ThrottledLog(log, FOREIGN_LOG_INTERVAL, logging.WARNING)

    def run(self) -> None:
        recv = self.udp.recv_run
        handle = self.handle
        lock = self.lock
        count = 0
        while True:
            datagrams, address = recv(RECEIVE_PAUSE)
            with lock:
                for data in datagrams:
                    handle(memoryview(data), len(data), address)
            count += len(datagrams)
            if count >= YIELD_EVERY:
                count = 0
                gevent.sleep(0)

    def poll(self, now: float) -> None:
        """The FEC hold's time bounds (called by the egress's timer greenlet).

        Not while datagrams wait in the socket (up to MAX_POLL_DEFER past the deadline): after
        the egress was descheduled, the parity that repairs a gap may be among them."""
        with self.lock:
            fec = self.fec
            deadline = fec.deadline
            if deadline is not None and now - deadline < MAX_POLL_DEFER and self._input_waiting():
                return
            fec.poll(now)

    def _input_waiting(self) -> bool:
        if self.udp is None:
            return False
        try:
            self.udp.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:  # BlockingIOError: nothing waits
            return False
        return True

    def drain(self) -> None:
        """Passes on every packet the FEC hold still waits with (the egress stops)."""
        with self.lock:
            self.fec.drain()

    def fec_recovered(self) -> int:
        """Data packets FEC restored in time for reassembly (a packet restored after the hold
        gave up on it was already counted lost, and is dropped)."""
        stats = self.fec.stats
        return stats.recovered - stats.repaired_late

    def loss_counts(self) -> tuple[int, int]:
        """(packets the link lost before FEC repair, data and parity packets that arrived)."""
        lost, fec = self.reassembler.stats.lost, self.fec.stats
        lost += fec.recovered - fec.repaired_late + fec.parity_lost
        received = self.received
        return lost, received[DATA_FIRST] + received[DATA] + received[PARITY]

    def handle(self, view: memoryview, size: int, address: tuple) -> None:
        if self.auth is not None:
            self._handle_signed(view, size, address)
            return
        header = parse_header(view, size)
        link = self.link
        if isinstance(header, str):
            if address == link.pinned or link.may_pin(address, time.monotonic()):
                self.malformed[header] += 1
            else:
                self._foreign(address)
            return
        kind, seq, _, _ = header
        now = time.monotonic()
        verdict = None
        if address != link.pinned:
            if not link.may_pin(address, now, kind):
                self._foreign(address)
                return
            link.pin(address, now)
            self._last_startup = -1e9
            if kind != STARTUP:
                self.fec.startup(now)
                self.reassembler.unsync("new sender")
        self._accepted(view, size, address, kind, seq, now, verdict)

    def _handle_signed(self, view: memoryview, size: int, address: tuple) -> None:
        """Authentication on: the gate first; the session is the pinned sender."""
        assert self.auth is not None
        link = self.link
        if link.expected is not None and not link.allowed(address):
            self._foreign(address)  # expected_sender still applies, before any session state
            return
        verdict = self.auth.check(view, size, address)
        if verdict is None:
            return
        size -= TRAILER_SIZE
        header = parse_header(view, size)
        if isinstance(header, str):  # signed by the session, yet malformed
            self.malformed[header] += 1
            return
        now = time.monotonic()
        if address != link.pinned:
            link.follow(address, now)
        self._accepted(view, size, address, header[0], header[1], now, verdict)
        if verdict is NEW_SESSION or verdict is RESUMED_SESSION:
            for datagram, origin in self.auth.release():
                self._handle_signed(memoryview(datagram), len(datagram), origin)

    def _session_startup(self, verdict: str, address: tuple, now: float) -> None:
        if verdict == NEW_SESSION:
            self.startups += 1
            log.info("StartUp of a new session from %s: sequence reset", format_hostport(address))
            self.fec.startup(now)
            self.reassembler.reset("startup")
        elif verdict == RESUMED_SESSION:
            log.warning(
                "session resumed from %s: resync at the next chunk", format_hostport(address)
            )
            self.fec.startup(now)
            self.reassembler.unsync("resumed session")

    def _accepted(
        self,
        view: memoryview,
        size: int,
        address: tuple,
        kind: int,
        seq: int,
        now: float,
        verdict: str | None,
    ) -> None:
        link = self.link
        self.received[kind] += 1
        self.bytes += size
        if kind == DATA_FIRST or kind == DATA:
            link.heard(now)
            self.fec.data(seq, view if size == len(view) else view[:size], now)
        elif kind == PARITY:
            link.heard(now)
            self.fec.parity(view if size == len(view) else view[:size], now)
        elif kind == HEARTBEAT:
            link.heard(now)
            self.fec.heartbeat(seq, now)
        elif kind == STARTUP:
            link.released = False
            link.heard(now)
            if verdict is not None:
                self._session_startup(verdict, address, now)
                return
            reassembler = self.reassembler
            if (
                reassembler.expected != 0
                or reassembler.in_chunk
                or now - self._last_startup >= STARTUP_HOLDOFF
            ):
                self.startups += 1
                log.info("StartUp from %s: sequence reset", format_hostport(address))
                self.fec.startup(now)
                reassembler.reset("startup")
            self._last_startup = now
        elif kind == SHUTDOWN:
            if not link.released:
                self.fec.drain()
                self.reassembler.observe_seq(seq)
                self.reassembler.unsync("shutdown")
            link.shutdown()

    def _foreign(self, address: tuple) -> None:
        self.foreign += 1
        self._foreign_log(
            "foreign",
            "refused datagram from %s: pinned sender is %s (%d refused so far)",
            _Address(address),
            _Address(self.link.pinned),
            self.foreign,
        )


class _Address:
    """A log argument formatted only when the line is written (foreign datagrams may flood)."""

    __slots__ = ("address",)

    def __init__(self, address: tuple | None) -> None:
        self.address = address

    def __str__(self) -> str:
        return "none" if self.address is None else format_hostport(self.address)
