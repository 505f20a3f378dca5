"""The spool's on-disk format (docs/spool.md), pure: bytes in, entries and verdicts out.

A spool directory holds segment files and one ack file:

* ``<first seq, 20 digits>.seg``: SEGMENT_MAGIC, then entries back to back. An entry is a
  24-byte header ``length u32 | crc u32 | seq u64 | time_ms u64`` (big-endian) and `length`
  payload bytes (one complete chunk). `crc` is the CRC32C of the header's other 20 bytes
  followed by the payload, so a torn or bit-flipped header is caught like a torn payload.
  Within a segment the sequence numbers are consecutive; the file's name is its first one.
  Segments only ever grow at the end (append-only); a new one starts at a size limit.
* ``ack``: ACK_MAGIC, the highest acknowledged sequence number (u64) and a CRC32C of both;
  replaced atomically (write ``ack.tmp``, fsync, rename). Every entry at or below it was
  confirmed by the target and is never delivered again.

Scanning rules (scan()): entries are read in order while the header is complete, the length
within bounds, the payload complete, the CRC right and the sequence number the expected one.
The first entry breaking a rule ends the segment: everything from its first byte on is the
torn tail (an append cut short by a crash, or damage), reported with its byte count and
counted as one entry when any of its bytes are there.

End marker: a segment written into a reused file (spares.py) may hold older bytes after its
entries, so its entries are always followed by MARKER, 24 bytes of FILL (0xFF). No header can
start with 0xFF (a length's first byte is at most 0x80), so a scan that finds MARKER where a
header would start ends there cleanly (`fill` True, torn None; at the end of a final buffer a
cut-off MARKER too): what follows is the file's older content, not a torn entry. A torn append
over it leaves at least a header's first byte, or whole entries followed by older bytes, whose
sequence numbers are lower than any this segment's entries carry: torn as ever.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from crc32c import crc32c

SEGMENT_MAGIC = b"DDCSPL1\n"
ACK_MAGIC = b"DDCACK1\n"
SEGMENT_SUFFIX = ".seg"
ACK_NAME = "ack"
HEADER = struct.Struct(">IIQQ")  # length, crc, seq, time_ms
HEADER_SIZE = HEADER.size
_CHECKED = struct.Struct(">IQQ")  # the header fields the crc covers, then the payload
_ACK = struct.Struct(">QI")
ACK_SIZE = len(ACK_MAGIC) + _ACK.size
MAX_ENTRY = 1 << 31  # bytes of payload; a chunk is bounded far lower by max_chunk_size
FILL = 0xFF  # no header starts with it
MARKER = bytes([FILL]) * HEADER_SIZE  # after the entries of a segment in a reused file


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def segment_seq(name: str) -> int | None:
    """The first sequence number a segment file name carries; None for other files."""
    stem = name[: -len(SEGMENT_SUFFIX)]
    if not name.endswith(SEGMENT_SUFFIX) or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


def entry_header(seq: int, time_ms: int, payload: bytes | bytearray | memoryview) -> bytes:
    """The 24 bytes that go in front of `payload` in a segment."""
    length = len(payload)
    crc = crc32c(payload, crc32c(_CHECKED.pack(length, seq, time_ms)))
    return HEADER.pack(length, crc, seq, time_ms)


def encode_entry(seq: int, time_ms: int, payload: bytes | bytearray | memoryview) -> bytes:
    return entry_header(seq, time_ms, payload) + bytes(payload)


class Entry(NamedTuple):
    """An entry of a spool (base.Item): `offset` is where its header is in its segment file."""

    seq: int
    time_ms: int
    size: int  # header + payload bytes
    payload: bytes | bytearray | memoryview
    offset: int  # of the header in the segment file


_new = tuple.__new__  # skips NamedTuple's Python-level __new__ on the read path


class Scan(NamedTuple):
    """What scan() found in a buffer: whole entries, where they end, and the tail's verdict."""

    entries: list[Entry]
    end: int  # offset just past the last whole entry
    next_seq: int  # the sequence number the next entry must carry
    torn: str | None  # why the bytes after `end` are not an entry (None: none, or incomplete)
    fill: bool = False  # `end` holds MARKER: what follows it is not the segment's


def scan(
    data: bytes | bytearray | memoryview,
    start: int,
    expect_seq: int | None,
    base: int = 0,
    final: bool = True,
    limit: int | None = None,
) -> Scan:
    """The entries in data[start:] (file offsets are `base` + buffer offsets).

    `expect_seq` None takes the first entry's number as it is. With `final` False the buffer
    is only a window of a longer file: an entry cut by its end is left for the next window
    (torn None) unless its length is impossible. `limit` stops after that many entries.
    """
    view = memoryview(data)
    size = len(view)
    entries: list[Entry] = []
    pos = start
    torn: str | None = None
    while limit is None or len(entries) < limit:
        if pos == size:
            break
        if view[pos] == FILL and _marker(view[pos : pos + HEADER_SIZE], final):
            return Scan(entries, base + pos, _next(expect_seq), None, True)
        if size - pos < HEADER_SIZE:
            torn = "partial header" if final else None
            break
        length, crc, seq, time_ms = HEADER.unpack_from(view, pos)
        if length > MAX_ENTRY:
            torn = f"impossible length {length}"
            break
        end = pos + HEADER_SIZE + length
        if end > size:
            torn = "partial entry" if final else None
            break
        payload = view[pos + HEADER_SIZE : end]
        if crc32c(payload, crc32c(_CHECKED.pack(length, seq, time_ms))) != crc:
            torn = "bad checksum"
            break
        if expect_seq is not None and seq != expect_seq:
            torn = f"sequence {seq} where {expect_seq} was due"
            break
        entries.append(_new(Entry, (seq, time_ms, HEADER_SIZE + length, payload, base + pos)))
        expect_seq = seq + 1
        pos = end
    return Scan(entries, base + pos, _next(expect_seq), torn)


def _next(expect_seq: int | None) -> int:
    return expect_seq if expect_seq is not None else -1


def _marker(head: memoryview, final: bool) -> bool:
    """MARKER, or at the end of a final buffer a part of it."""
    return (len(head) == HEADER_SIZE or final) and head == MARKER[: len(head)]


def encode_ack(seq: int) -> bytes:
    body = ACK_MAGIC + struct.pack(">Q", seq)
    return ACK_MAGIC + _ACK.pack(seq, crc32c(body))


def decode_ack(data: bytes) -> int | None:
    """The acknowledged sequence number; None when the file is not a whole, valid ack."""
    if len(data) != ACK_SIZE or not data.startswith(ACK_MAGIC):
        return None
    seq, crc = _ACK.unpack_from(data, len(ACK_MAGIC))
    if crc32c(ACK_MAGIC + struct.pack(">Q", seq)) != crc:
        return None
    return int(seq)
