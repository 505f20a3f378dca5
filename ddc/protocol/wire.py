"""The 9-byte little-endian header of every DDC datagram (docs/wire-protocol.md).

    type u8 | seq u32 | length u16 (payload bytes) | remaining u16 (packets of the chunk after this)

The transport's headers come from `fragment` (data packets) and `encode_header` (control
packets); the receiver reads them with `parse_header`, the diode simulator with `type_name`.
Nothing outside ddc.protocol packs or unpacks `HEADER`. Type 6 (Parity, FEC) is parsed here like
the others; its own header is fec.parse_parity's. Types 0 and 7+ are UNKNOWN_TYPE.
"""

from __future__ import annotations

import struct
from enum import IntEnum

HEADER = struct.Struct("<BIHH")
HEADER_SIZE = HEADER.size  # 9
MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4: no DDC datagram is bigger
MAX_PAYLOAD = MAX_DATAGRAM - HEADER_SIZE  # 65498
SEQ_MODULO = 1 << 32
MAX_REMAINING = 0xFFFF


class MessageType(IntEnum):
    STARTUP = 1
    HEARTBEAT = 2
    DATA_FIRST = 3
    DATA = 4
    SHUTDOWN = 5
    PARITY = 6  # wire v2 FEC (ddc.protocol.fec): consumes no sequence number


_FIRST_TYPE = min(MessageType)
_LAST_TYPE = max(MessageType)
# metric label of each message type ("data_first"), and of a datagram that is not a DDC v1 one
TYPE_NAMES: dict[int, str] = {kind: kind.name.lower() for kind in MessageType}
OTHER = "other"

# Why parse_header refused a datagram: the `reason` label of ddc_egress_malformed_packets_total.
SHORT = "short"  # fewer bytes than a header
UNKNOWN_TYPE = "unknown_type"
LENGTH_MISMATCH = "length_mismatch"  # the length field is not the payload's size

Header = tuple[int, int, int, int]  # (type, seq, length, remaining)


def encode_header(kind: int, seq: int, length: int, remaining: int = 0) -> bytes:
    return HEADER.pack(kind, seq % SEQ_MODULO, length, remaining)


def parse_header(datagram: bytes | bytearray | memoryview, size: int) -> Header | str:
    """(type, seq, length, remaining) of a v1 datagram of `size` bytes, or why it is malformed:
    SHORT, UNKNOWN_TYPE or LENGTH_MISMATCH.

    The receiver's hot path calls this for every datagram, so a refusal is a returned string,
    not an exception: `type(parsed) is str` tells them apart.
    """
    if size < HEADER_SIZE:
        return SHORT
    header: Header = HEADER.unpack_from(datagram)
    if not _FIRST_TYPE <= header[0] <= _LAST_TYPE:
        return UNKNOWN_TYPE
    if header[2] != size - HEADER_SIZE:
        return LENGTH_MISMATCH
    return header


def type_name(datagram: bytes | bytearray | memoryview) -> str:
    """The message type name of a datagram ("data_first"), OTHER when it is no DDC v1 one.

    A light look at the first byte, for counting (the diode simulator's drops by type): the
    length field is not checked.
    """
    if len(datagram) < HEADER_SIZE:
        return OTHER
    return TYPE_NAMES.get(datagram[0], OTHER)


def seq_distance(seq: int, expected: int) -> int:
    """How far `seq` is ahead of `expected` modulo 2^32, negative when it is behind.

    Exactly half the sequence space away counts as behind.
    """
    diff = (seq - expected) % SEQ_MODULO
    return diff if diff < SEQ_MODULO // 2 else diff - SEQ_MODULO


def packets_for(chunk_size: int, payload_max: int) -> int:
    """Packets a chunk of `chunk_size` bytes takes: at least one, even when empty."""
    return max(1, -(-chunk_size // payload_max))
