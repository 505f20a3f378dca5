"""The 9-byte little-endian header of every DDC datagram (DESIGN.md §2)."""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ddc.errors import MalformedPacket

HEADER = struct.Struct("<BIHH")
HEADER_SIZE = HEADER.size  # 9
MAX_DATAGRAM = 65507
MAX_PAYLOAD = MAX_DATAGRAM - HEADER_SIZE  # 65498
SEQ_MODULO = 1 << 32
MAX_REMAINING = 0xFFFF


class MessageType(IntEnum):
    STARTUP = 1
    HEARTBEAT = 2
    DATA_FIRST = 3
    DATA = 4
    SHUTDOWN = 5


class Header(NamedTuple):
    type: int
    seq: int
    length: int
    remaining: int


def encode_header(kind: int, seq: int, length: int, remaining: int = 0) -> bytes:
    return HEADER.pack(kind, seq % SEQ_MODULO, length, remaining)


def decode_header(datagram: bytes | bytearray | memoryview) -> Header:
    """The header of a datagram, checked against its length; MalformedPacket if it is not v1."""
    size = len(datagram)
    if size < HEADER_SIZE:
        raise MalformedPacket(f"short datagram ({size} bytes)")
    kind, seq, length, remaining = HEADER.unpack_from(datagram)
    if not MessageType.STARTUP <= kind <= MessageType.SHUTDOWN:
        raise MalformedPacket(f"unknown message type {kind}")
    if length != size - HEADER_SIZE:
        raise MalformedPacket(f"length field {length} but {size - HEADER_SIZE} payload bytes")
    return Header(kind, seq, length, remaining)


def seq_distance(seq: int, expected: int) -> int:
    """How far `seq` is ahead of `expected` modulo 2^32, negative when it is behind."""
    diff = (seq - expected) % SEQ_MODULO
    return diff if diff < SEQ_MODULO // 2 else diff - SEQ_MODULO


def packets_for(chunk_size: int, payload_max: int) -> int:
    return max(1, -(-chunk_size // payload_max))
