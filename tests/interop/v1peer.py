"""An independent implementation of DDC wire protocol v1, written from the wire protocol
specification (docs/wire-protocol.md) only.

It deliberately shares no code with `ddc.protocol`: the interop tests use it to check that what
`ddc ingress` puts on the wire and what `ddc egress` accepts is the documented format, not
merely whatever ddc's own encoder and decoder agree on.

Datagram: type (u8) | seq (u32) | payload length (u16) | remaining (u16) | payload, little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STARTUP, HEARTBEAT, DATA_FIRST, DATA, SHUTDOWN = 1, 2, 3, 4, 5
KNOWN_TYPES = (STARTUP, HEARTBEAT, DATA_FIRST, DATA, SHUTDOWN)
HEADER_LEN = 1 + 4 + 2 + 2
MAX_DATAGRAM = 65507
SEQ_SPACE = 2**32


def header(kind: int, seq: int, length: int, remaining: int) -> bytes:
    return (
        kind.to_bytes(1, "little")
        + (seq % SEQ_SPACE).to_bytes(4, "little")
        + length.to_bytes(2, "little")
        + remaining.to_bytes(2, "little")
    )


@dataclass(frozen=True)
class Packet:
    kind: int
    seq: int
    remaining: int
    payload: bytes


def parse(datagram: bytes) -> Packet:
    """One datagram; ValueError when it is not well-formed v1."""
    if len(datagram) < HEADER_LEN:
        raise ValueError(f"datagram of {len(datagram)} bytes is shorter than the header")
    kind = datagram[0]
    seq = int.from_bytes(datagram[1:5], "little")
    length = int.from_bytes(datagram[5:7], "little")
    remaining = int.from_bytes(datagram[7:9], "little")
    if kind not in KNOWN_TYPES:
        raise ValueError(f"unknown message type {kind}")
    if length != len(datagram) - HEADER_LEN:
        raise ValueError(f"length field {length} != {len(datagram) - HEADER_LEN} payload bytes")
    return Packet(kind, seq, remaining, bytes(datagram[HEADER_LEN:]))


class Encoder:
    """The sending side: StartUp burst, chunks as DataFirst/Data, HeartBeat, Shutdown burst."""

    def __init__(self, max_packet_size: int = MAX_DATAGRAM, first_seq: int = 0) -> None:
        if not HEADER_LEN < max_packet_size <= MAX_DATAGRAM:
            raise ValueError(f"max_packet_size {max_packet_size} out of range")
        self.payload_max = max_packet_size - HEADER_LEN
        self.seq = first_seq % SEQ_SPACE  # the seq the next data packet carries

    def startup(self, count: int = 200) -> list[bytes]:
        """The StartUp burst: seq 0, empty payload; data restarts at seq 0."""
        self.seq = 0
        return [header(STARTUP, 0, 0, 0)] * count

    def chunk(self, data: bytes) -> list[bytes]:
        """P = max(1, ceil(N / payload_max)) packets, remaining P-1 down to 0, one seq each."""
        count = max(1, (len(data) + self.payload_max - 1) // self.payload_max)
        if count - 1 > 0xFFFF:
            raise ValueError(
                f"a chunk of {len(data)} bytes needs {count} packets, more than v1 allows"
            )
        packets = []
        for index in range(count):
            piece = data[index * self.payload_max : (index + 1) * self.payload_max]
            kind = DATA_FIRST if index == 0 else DATA
            packets.append(header(kind, self.seq, len(piece), count - 1 - index) + piece)
            self.seq = (self.seq + 1) % SEQ_SPACE
        return packets

    def heartbeat(self) -> bytes:
        """Carries the current seq (the next one a data packet will use); consumes none."""
        return header(HEARTBEAT, self.seq, 0, 0)

    def shutdown(self, count: int = 20) -> list[bytes]:
        return [header(SHUTDOWN, self.seq, 0, 0)] * count


@dataclass
class Decoder:
    """The receiving side's state machine: reassembles chunks, counts loss, never delivers a
    partial chunk."""

    expected: int | None = None  # None until the first StartUp or DataFirst
    chunks: list[bytes] = field(default_factory=list)
    lost: int = 0
    late: int = 0
    malformed: int = 0
    aborted: int = 0
    startups: int = 0
    shutdowns: int = 0
    heartbeats: list[int] = field(default_factory=list)
    _parts: list[bytes] | None = None
    _left: int = 0

    def feed(self, datagram: bytes) -> None:
        try:
            packet = parse(datagram)
        except ValueError:
            self.malformed += 1
            return
        if packet.kind == STARTUP:
            self.startups += 1
            self.expected = 0
            self._abort(count=False)
        elif packet.kind in (HEARTBEAT, SHUTDOWN):
            if packet.kind == HEARTBEAT:
                self.heartbeats.append(packet.seq)
            else:
                self.shutdowns += 1
            if self.expected is not None and self._ahead(packet.seq) > 0:
                self.lost += self._ahead(packet.seq)  # the stream's tail went missing
                self.expected = packet.seq
                self._abort()
        else:
            self._data(packet)

    def _ahead(self, seq: int) -> int:
        """How far seq is past the expected one (negative: behind), modulo 2^32."""
        diff = (seq - self.expected) % SEQ_SPACE
        return diff if diff < SEQ_SPACE // 2 else diff - SEQ_SPACE

    def _data(self, packet: Packet) -> None:
        if self.expected is None:
            self.expected = packet.seq
        ahead = self._ahead(packet.seq)
        if ahead < 0:
            self.late += 1
            return
        if ahead > 0:
            self.lost += ahead
            self._abort()
        self.expected = (packet.seq + 1) % SEQ_SPACE
        if packet.kind == DATA_FIRST:
            if self._parts is not None:
                self._abort()
                self.malformed += 1  # a new chunk began before the last one ended
            self._parts, self._left = [packet.payload], packet.remaining
        elif self._parts is None:
            return  # the rest of a chunk whose beginning was lost: resync at the next DataFirst
        elif packet.remaining != self._left - 1:
            self.malformed += 1
            self._abort()
            return
        else:
            self._parts.append(packet.payload)
            self._left = packet.remaining
        if self._left == 0:
            self.chunks.append(b"".join(self._parts))
            self._parts = None

    def _abort(self, count: bool = True) -> None:
        if self._parts is not None and count:
            self.aborted += 1
        self._parts = None
        self._left = 0
