"""Splitting a chunk into DataFirst/Data packets with consecutive sequence numbers."""

from __future__ import annotations

from collections.abc import Iterator

from ddc.protocol.wire import HEADER, MAX_REMAINING, SEQ_MODULO, MessageType, packets_for


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


def max_chunk_bytes(payload_max: int) -> int:
    return (MAX_REMAINING + 1) * payload_max


def split(
    chunk: bytes | bytearray | memoryview, payload_max: int
) -> Iterator[tuple[int, int, memoryview]]:
    """(message type, remaining, payload view) of each packet of `chunk`."""
    view = memoryview(chunk)
    size = len(view)
    count = packets_for(size, payload_max)
    if count - 1 > MAX_REMAINING:
        raise ChunkTooLarge(
            f"{size} bytes need {count} packets of {payload_max}; max {MAX_REMAINING + 1}"
        )
    kind = MessageType.DATA_FIRST
    offset = 0
    for remaining in range(count - 1, -1, -1):
        yield kind, remaining, view[offset : offset + payload_max]
        offset += payload_max
        kind = MessageType.DATA


def fragment(
    chunk: bytes | bytearray | memoryview, payload_max: int, sequence: Sequence
) -> Iterator[tuple[bytes, memoryview]]:
    """(header, payload view) of each packet of `chunk`, taking one sequence number each."""
    pack = HEADER.pack
    for kind, remaining, payload in split(chunk, payload_max):
        yield pack(kind, sequence.take(), len(payload), remaining), payload
