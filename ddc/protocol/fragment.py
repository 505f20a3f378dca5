"""Splitting a chunk into DataFirst/Data packets with consecutive sequence numbers.

A chunk of N bytes is P = max(1, ceil(N / payload_max)) packets: one DataFirst with
remaining = P-1, then Data packets with remaining P-2 .. 0, each taking the next sequence number.
`fragment` is what the transport sends; nothing else builds data packet headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ddc.protocol.wire import HEADER, MAX_REMAINING, SEQ_MODULO, MessageType, packets_for

Payload = bytes | bytearray | memoryview
DATA_FIRST = MessageType.DATA_FIRST
DATA = MessageType.DATA


class Sequence:
    """The next sequence number to send; wraps at 2^32."""

    __slots__ = ("next",)

    def __init__(self, start: int = 0) -> None:
        self.next = start % SEQ_MODULO

    def take(self) -> int:
        seq = self.next
        self.next = (seq + 1) % SEQ_MODULO
        return seq


class ChunkTooLarge(ValueError):
    """A chunk that needs more packets than the 16-bit `remaining` field can count."""


REFERENCE_MAX_PACKETS = 20  # the Rust DDC's receiver has 20 fragment slots per chunk


def max_chunk_bytes(payload_max: int) -> int:
    """The largest chunk `payload_max`-byte packets can carry (remaining is 16 bits)."""
    return (MAX_REMAINING + 1) * payload_max


def fragment(
    chunk: Payload, payload_max: int, sequence: Sequence
) -> Iterable[tuple[bytes, Payload]]:
    """(header, payload) of each packet of `chunk`, each taking the next sequence number.

    The payloads are views of `chunk` (the chunk itself when it fits one packet): no copy.
    A multi-packet chunk's packets are made one at a time, each taking its seq as it is
    reached. ChunkTooLarge (raised here, before any seq is taken) when the chunk needs more
    packets than `remaining` can count.
    """
    size = len(chunk)
    if size <= payload_max:  # the common case: one packet, made without a generator
        return ((HEADER.pack(DATA_FIRST, sequence.take(), size, 0), chunk),)
    count = packets_for(size, payload_max)
    if count - 1 > MAX_REMAINING:
        raise ChunkTooLarge(
            f"{size} bytes need {count} packets of {payload_max}; max {MAX_REMAINING + 1}"
        )
    return _packets(memoryview(chunk), count, payload_max, sequence)


def _packets(
    view: memoryview, count: int, payload_max: int, sequence: Sequence
) -> Iterator[tuple[bytes, memoryview]]:
    pack = HEADER.pack
    kind = DATA_FIRST
    offset = 0
    for remaining in range(count - 1, -1, -1):
        payload = view[offset : offset + payload_max]
        yield pack(kind, sequence.take(), len(payload), remaining), payload
        offset += payload_max
        kind = DATA
