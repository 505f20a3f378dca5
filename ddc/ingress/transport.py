"""The ingress's UDP side: sequence numbers, fragmentation, pacing, control bursts, FEC parity.

FEC (`fec_data` K > 0 and `fec_parity` M > 0, docs/wire-protocol.md): data datagrams are at
most `data_datagram_max(max_packet_size)` bytes so parity fits `max_packet_size`; every data
datagram goes to the encoder once its seq is taken (sent or not: the egress may restore it) and
the parity it completes is sent right after it, paced like data. A group closes when full, when
the sender has been idle for the linger since its first packet (`fec_wait`, `flush_fec`), or
FEC_MAX_GROUP_AGE after its first packet. Parity is encoded in the sending greenlet, right after
the data packet that closed its block. Only the one sending greenlet calls
`send_chunk` and `flush_fec`, so a block's parity never overtakes data;
`send_shutdown` flushes first, `send_startup` resets the encoder. FEC off: the v1 path, unchanged.

Batches (ddc/ingress/gso.py): where the kernel has UDP GSO, a chunk's data packets go to it in
as few sends as `Batch` allows (a batch ends where FEC parity must follow), the parity of a
block likewise; pacing takes each batch's bytes before it goes. A send the kernel refuses as
GSO is made datagram by datagram, and GSO stays off from then on (logged once). With
`send_delay_ms` (a pause after every packet) every datagram is its own send.

Authentication (`auth_keys`, ddc/ingress/auth_sender.py): every datagram (data, parity,
StartUp, HeartBeat, Shutdown) ends in a 17-byte trailer, so datagrams carry 17 bytes less
payload within `max_packet_size`; FEC encodes the datagrams before their trailer.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from typing import Any

import gevent

from ddc.ingress import gso
from ddc.ingress.auth_sender import AuthSender
from ddc.ingress.pacing import FixedDelay, make_pacer
from ddc.metrics import IngressMetrics
from ddc.netio import UdpSocket, set_send_buffer
from ddc.protocol import isal
from ddc.protocol.auth import TRAILER_SIZE
from ddc.protocol.fec import FecEncoder, data_datagram_max
from ddc.protocol.fragment import Payload, Sequence, fragment
from ddc.protocol.wire import HEADER_SIZE, SEQ_MODULO, MessageType, encode_header
from ddc.units import format_hostport

log = logging.getLogger(__name__)

# pause between the StartUp burst and the first data, so no StartUp can trail behind data
STARTUP_SETTLE = 0.05
# errors no retry can cure: the packet is dropped and counted
PERMANENT_ERRORS = {errno.EMSGSIZE, errno.EINVAL, errno.EAFNOSUPPORT}
MAX_BACKOFF = 1.0
RESOLVE_INTERVAL = 30.0
# an FEC group still open this long after its first packet is closed even while data keeps
# coming (a slow `rate`): its parity must reach the egress within its 100 ms repair wait
FEC_MAX_GROUP_AGE = 0.05


class GsoRefused(Exception):
    """The kernel refused a send as GSO (the OSError is its __cause__)."""


def resolve(address: tuple[str, int]) -> tuple[int, tuple]:
    """(family, sockaddr) of a host:port, resolved once instead of by every sendmsg."""
    family, _, _, _, sockaddr = socket.getaddrinfo(address[0], address[1], 0, socket.SOCK_DGRAM)[0]
    return family, sockaddr


class Transport:
    """Sends chunks and control packets to the egress; one sequence space per process run.

    Data packets whose send fails for a transient reason (interface down, no buffer) are
    retried until they go, so nothing read from the source is skipped; only errors no retry
    can cure drop a packet, and the egress then counts it as lost.
    """

    def __init__(self, config: dict[str, Any], metrics: IngressMetrics, name: str = "ddc") -> None:
        self.destination = config["destination"]
        self.bind = config["bind"]
        k, m = config.get("fec_data", 0), config.get("fec_parity", 0)
        self.fec: FecEncoder | None = None
        max_datagram = config["max_packet_size"]
        if config.get("auth_keys"):
            max_datagram -= TRAILER_SIZE  # every datagram, parity too, ends in a trailer
        if k and m:
            linger = config.get("fec_linger_ms", 5.0) / 1000
            interleave = config.get("fec_interleave", 1)
            self.fec = FecEncoder(k, m, interleave, linger, FEC_MAX_GROUP_AGE)
            max_datagram = data_datagram_max(max_datagram)
        self.auth: AuthSender | None = None
        if config.get("auth_keys"):
            fec = (k, m) if k and m else None
            self.auth = AuthSender(
                config["auth_keys"], name, config["envelope"], config["max_packet_size"], fec
            )
        self.payload_max = max_datagram - HEADER_SIZE
        self.config = config
        self.metrics = metrics
        self.sequence = Sequence()
        self.handed_over = 0  # the seq after the last packet given to the kernel
        self.pacer = make_pacer(config["rate"], config["send_delay_ms"])
        self.gso = False  # UDP GSO batches (open() finds out whether the kernel has it)
        self._batch = gso.Batch()  # data packets
        self._parity_batch = gso.Batch()
        self.udp: UdpSocket | None = None
        self.sockaddr: tuple | None = None
        self.failing: str | None = None  # the error while sends keep failing, for /healthz
        # counted as plain integers on the hot path, exported at scrape time
        self.data_packets = 0
        self.data_bytes = 0
        self.chunks = 0
        self.parity_packets = 0
        self.parity_bytes = 0
        self._resolved_at = 0.0

    def open(self) -> None:
        family, self.sockaddr = resolve(self.destination)
        self._resolved_at = time.monotonic()
        self.udp = UdpSocket(family)
        set_send_buffer(self.udp.sock, self.config["send_buffer"])
        self.udp.sock.bind(self.bind)
        self.gso = not isinstance(self.pacer, FixedDelay) and gso.supported(self.udp.sock)
        log.info(
            "sending to %s (%s) from %s, max packet %d bytes, UDP GSO %s",
            format_hostport(self.destination),
            format_hostport(self.sockaddr),
            format_hostport(self.udp.getsockname()),
            self.payload_max + HEADER_SIZE,
            "on" if self.gso else "off",
        )
        if self.fec is not None:
            log.info(
                "FEC %d+%d (interleave %d): parity computed by %s",
                self.fec.k,
                self.fec.m,
                self.fec.interleave,
                isal.status(),
            )

    def refresh_destination(self) -> None:
        """Re-resolves a destination given by name (an orchestrator may move the egress)."""
        if time.monotonic() - self._resolved_at < RESOLVE_INTERVAL:
            return
        self._resolved_at = time.monotonic()
        try:
            _, sockaddr = resolve(self.destination)
        except OSError as exc:
            log.warning(
                "cannot resolve %s (%s): still sending to %s",
                self.destination[0],
                exc,
                self.sockaddr,
            )
            return
        if sockaddr != self.sockaddr:
            log.warning(
                "destination %s now resolves to %s", format_hostport(self.destination), sockaddr
            )
            self.sockaddr = sockaddr

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
            self.udp = None

    def _send(self, buffers: list[Payload], persist: bool, segment: int = 0) -> bool:
        """True once sent; False when dropped (a permanent error, or a control packet that failed).
        `segment`: a GSO send of datagrams of that size; GsoRefused when the kernel refuses it."""
        udp, sockaddr = self.udp, self.sockaddr
        assert udp is not None and sockaddr is not None, "send before open()"
        control = gso.segment_control(segment) if segment else ()
        backoff = 0.001
        while True:
            try:
                udp.sendmsg(buffers, sockaddr, control)
                if self.failing is not None:
                    log.warning("sending to %s again", format_hostport(self.destination))
                    self.failing = None
                return True
            except OSError as exc:
                if segment and exc.errno in gso.REFUSED:
                    raise GsoRefused(exc) from exc
                self.metrics.send_errors.inc()
                if self.failing != str(exc):
                    log.error("send to %s failing: %s", format_hostport(self.destination), exc)
                    self.failing = str(exc)
                if not persist or exc.errno in PERMANENT_ERRORS:
                    return False
                gevent.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    def send_chunk(self, chunk: Payload) -> bool:
        """Fragments and sends one chunk; False when a packet of it had to be dropped.

        FEC on: each data datagram is joined once (the encoder keeps it) and goes to the
        encoder; the parity it completes follows the batch that holds it. Auth on: each
        datagram leaves with its trailer."""
        sequence = self.sequence
        fec = self.fec
        signer = self.auth.signer if self.auth is not None else None
        batch = self._batch
        flush = self._flush_data
        complete = True
        for header, payload in fragment(chunk, self.payload_max, sequence):
            if fec is None:
                parts: list[Payload] = [header, payload]
                length = HEADER_SIZE + len(payload)
            else:
                datagram = b"".join((header, payload))
                parts = [datagram]
                length = len(datagram)
            if signer is not None:
                parts.append(signer.trailer_of(parts))
                length += TRAILER_SIZE
            if not batch.fits(length):
                complete = flush() and complete
            batch.add(parts, length)
            batch.end = sequence.next
            if not self.gso:
                complete = flush() and complete
            if fec is not None:
                # a packet that is dropped still took its seq: the egress may restore it
                parity = fec.add((sequence.next - 1) % SEQ_MODULO, datagram, time.monotonic())
                if parity:
                    complete = flush() and complete
                    self._send_parity(parity)
        complete = flush() and complete
        if complete:
            self.chunks += 1
        return complete

    def _flush_data(self) -> bool:
        """Sends the batched data packets; False when one had to be dropped."""
        if not self._batch.datagrams:
            return True
        end = self._batch.end
        total, sent, length = self._send_batch(self._batch)
        self.data_packets += sent
        self.data_bytes += length
        # HeartBeats announce only handed-over seqs: one sent while this batch waited for
        # socket space must not make the egress count it as lost (a packet that is dropped
        # still consumed its seq: the egress counts it as lost)
        self.handed_over = end
        return sent == total

    def _send_batch(self, batch: gso.Batch) -> tuple[int, int, int]:
        """Sends a batch (paced; one GSO send where it can): (datagrams, sent, bytes sent)."""
        datagrams, buffers, segment, length = batch.take()
        self.pacer.take(length, len(datagrams))
        if len(datagrams) > 1 and self.gso:
            try:
                if self._send(buffers, True, segment):
                    return len(datagrams), len(datagrams), length
                return len(datagrams), 0, 0
            except GsoRefused as refused:
                self.gso = False
                log.warning(
                    "the kernel refused a UDP GSO send (%s): sending datagram by datagram "
                    "from now on",
                    refused.__cause__,
                )
        sent = length = 0
        for parts in datagrams:
            if self._send(parts, True):
                sent += 1
                length += sum(map(len, parts))
        return len(datagrams), sent, length

    def _send_parity(self, parity: list[bytes]) -> None:
        signer = self.auth.signer if self.auth is not None else None
        batch = self._parity_batch
        for datagram in parity:
            parts: list[Payload] = [datagram]
            if signer is not None:
                parts.append(signer.trailer_of(parts))
            length = len(datagram) + (TRAILER_SIZE if signer is not None else 0)
            if not batch.fits(length) or not self.gso:
                self._flush_parity()
            batch.add(parts, length)
        self._flush_parity()

    def _flush_parity(self) -> None:
        if self._parity_batch.datagrams:
            _, sent, length = self._send_batch(self._parity_batch)
            self.parity_packets += sent
            self.parity_bytes += length

    def fec_wait(self) -> float | None:
        """Seconds until the open FEC block's linger ends (0: now); None: nothing to flush."""
        due = None if self.fec is None else self.fec.due_at
        return None if due is None else max(0.0, due - time.monotonic())

    def flush_fec(self) -> None:
        """Closes the open FEC block and sends its parity (the linger, or before Shutdown)."""
        if self.fec is not None:
            self._send_parity(self.fec.flush())

    def _control(self, kind: MessageType, seq: int, count: int, payload: bytes = b"") -> None:
        datagram = encode_header(kind, seq, len(payload), 0) + payload
        if self.auth is not None:
            datagram = self.auth.signer.sign(datagram)
        counter = self.metrics.packets_sent.labels(type=kind.name.lower())
        for index in range(count):
            if self._send([datagram], False):
                counter.inc()
                self.metrics.bytes_sent.inc(len(datagram))
            if index % 50 == 49:
                gevent.sleep(0.0005)  # a burst, but not faster than a receiver's buffer can take

    def send_startup(self) -> None:
        if self.fec is not None:
            self.fec.reset()
        self.sequence = Sequence(0)
        self.handed_over = 0
        payload = b""
        if self.auth is not None:
            self.auth.new_session()
            payload = self.auth.startup_payload()
        self._control(MessageType.STARTUP, 0, self.config["startup_burst"], payload)
        gevent.sleep(STARTUP_SETTLE)
        log.info("StartUp burst sent (%d packets)", self.config["startup_burst"])

    def send_heartbeat(self) -> None:
        """A HeartBeat; with auth on, after a repeat of the session's StartUp (a restarted
        egress resumes the session with it, docs/security.md)."""
        if self.auth is not None:
            payload = self.auth.startup_payload(self.handed_over)
            self._control(MessageType.STARTUP, 0, 1, payload)
        self._control(MessageType.HEARTBEAT, self.handed_over, 1)

    def reload(self) -> None:
        """SIGHUP: re-read the key file (auth on)."""
        if self.auth is not None:
            self.auth.reload()

    def send_shutdown(self) -> None:
        self.flush_fec()
        self._control(MessageType.SHUTDOWN, self.handed_over, self.config["shutdown_burst"])
        log.info("Shutdown burst sent at seq %d", self.handed_over)
