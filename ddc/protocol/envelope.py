"""Chunk envelopes (docs/wire-protocol.md): `raw` (the record's bytes) and `records` (a
checksummed batch).

records batch v1, little-endian:
    b"DDCR" | version u8 (1) | flags u8 (0) | count u32 | crc32 u32 of the body | body
    body = count × record:
        value_len u32 (0xFFFFFFFF: null value, a Kafka tombstone) | key_len i32 (-1: no key) | topic_len u16 | partition i32 | offset i64
        | timestamp_ms i64 | header_count u16 | value | key | topic (UTF-8)
        | header_count × (name_len u16 | value_len i32 (-1: None) | name (UTF-8) | value)

records batch v2 (sent when the batch holds records read from Kafka): the v1 header with
version 2, and the body starts with the sender's account of each partition in the batch:
    body = mark_count u16 | mark_count × mark | count × record (as in v1)
    mark = topic_len u16 | partition i32 | run u32 | first_offset i64 | prev_offset i64
        | sent_before u64 | count u32 | last_offset i64 | topic (UTF-8)
  run: the sender's id for an unbroken run of this partition (new on an ingress restart and
  whenever the partition's offsets went backwards); first_offset: the run's first record;
  prev_offset: the last record of this partition sent in this run before this batch (-1: none);
  sent_before: records of this partition sent in this run before this batch; count and
  last_offset: this batch's records of the partition (count may be 0: a run's closing mark).
  The marks' counts add up to the batch's records that carry a topic, partition and offset.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ddc.errors import EnvelopeError
from ddc.protocol.record import Record

MAGIC = b"DDCR"
MEDIA_TYPE = "application/vnd.ddc.records"  # a batch as an HTTP body (the dedup API)
VERSION = 1
VERSION_MARKS = 2  # v2: per-partition marks before the records
VERSIONS = (VERSION, VERSION_MARKS)
BATCH = struct.Struct("<4sBBII")
RECORD = struct.Struct("<IiHiqqH")
HEADER_ITEM = struct.Struct("<Hi")
VALUE_LEN = struct.Struct("<I")
MARK = struct.Struct("<HiIqqQIq")
MARK_COUNT = struct.Struct("<H")
MAX_MARKS = 0xFFFF
NULL_VALUE = 0xFFFFFFFF
# everything of a value-only record after value_len: no key, topic, partition, offset, timestamp, headers
_BARE_TAIL = RECORD.pack(0, -1, 0, -1, -1, -1, 0)[VALUE_LEN.size :]
BATCH_OVERHEAD = BATCH.size
RECORD_OVERHEAD = RECORD.size


@dataclass(slots=True, frozen=True)
class Mark:
    """What the sender says about one partition of a v2 batch (see the module docstring)."""

    topic: str
    partition: int
    run: int
    first_offset: int
    prev_offset: int
    sent_before: int
    count: int
    last_offset: int


@dataclass(slots=True)
class Batch:
    version: int
    records: list[Record]
    marks: list[Mark]


def has_source(record: Record) -> bool:
    """True when a record carries its Kafka origin (topic, partition, offset): marks count it."""
    return record.topic is not None and record.partition >= 0 and record.offset >= 0


def record_size(item: Record | bytes) -> int:
    """Bytes `item` takes inside a batch (exact for bytes, a close estimate for records)."""
    if isinstance(item, bytes | bytearray | memoryview):
        return RECORD_OVERHEAD + len(item)
    size = (
        RECORD_OVERHEAD + len(item.value or b"") + len(item.key or b"") + len(item.topic or "") * 4
    )
    for name, value in item.headers:
        size += HEADER_ITEM.size + len(name) * 4 + len(value or b"")
    return size


def _encode_record(record: Record, parts: list) -> None:
    topic = record.topic.encode() if record.topic else b""
    key = record.key
    value = record.value
    parts.append(
        RECORD.pack(
            NULL_VALUE if value is None else len(value),
            -1 if key is None else len(key),
            len(topic),
            record.partition,
            record.offset,
            record.timestamp,
            len(record.headers),
        )
    )
    if value:
        parts.append(value)
    if key:
        parts.append(key)
    if topic:
        parts.append(topic)
    for name, value in record.headers:
        name_bytes = name.encode()
        parts.append(HEADER_ITEM.pack(len(name_bytes), -1 if value is None else len(value)))
        parts.append(name_bytes)
        if value:
            parts.append(value)


def _encode_marks(marks: Sequence[Mark], parts: list) -> None:
    if len(marks) > MAX_MARKS:
        raise ValueError(f"{len(marks)} partitions in one batch (at most {MAX_MARKS})")
    parts.append(MARK_COUNT.pack(len(marks)))
    for mark in marks:
        topic = mark.topic.encode()
        parts.append(
            MARK.pack(
                len(topic),
                mark.partition,
                mark.run,
                mark.first_offset,
                mark.prev_offset,
                mark.sent_before,
                mark.count,
                mark.last_offset,
            )
        )
        parts.append(topic)


def encode_records(items: Iterable[Record | bytes], marks: Sequence[Mark] | None = None) -> bytes:
    """One records-envelope chunk holding `items` (Record objects or plain values).

    With `marks` (even an empty list) the batch is v2, else v1.
    """
    parts: list = [b""]
    version = VERSION
    if marks is not None:
        version = VERSION_MARKS
        _encode_marks(marks, parts)
    pack_len = VALUE_LEN.pack
    count = 0
    for item in items:
        count += 1
        if isinstance(item, bytes | bytearray | memoryview):
            parts.append(pack_len(len(item)))
            parts.append(_BARE_TAIL)
            parts.append(item)
        else:
            _encode_record(item, parts)
    body = b"".join(parts)
    return BATCH.pack(MAGIC, version, 0, count, zlib.crc32(body)) + body


def batch_count(chunk: bytes | bytearray | memoryview) -> int:
    """The record count a batch's header declares (checked by decode_batch, not here);
    EnvelopeError when `chunk` does not start with a records batch header."""
    if len(chunk) < BATCH.size or bytes(chunk[:4]) != MAGIC:
        raise EnvelopeError("not a records batch (no DDCR header)")
    count: int = BATCH.unpack_from(chunk)[3]
    return count


def is_records(chunk: bytes | bytearray | memoryview) -> bool:
    """True when `chunk` carries a valid records batch header and checksum."""
    if len(chunk) < BATCH.size or bytes(chunk[:4]) != MAGIC:
        return False
    _, version, _, _, crc = BATCH.unpack_from(chunk)
    return version in VERSIONS and zlib.crc32(memoryview(chunk)[BATCH.size :]) == crc


def decode_records(chunk: bytes | bytearray | memoryview, checked: bool = False) -> list[Record]:
    """The records of a batch; EnvelopeError if it is corrupt or truncated.

    checked: is_records() already verified the header and checksum.
    """
    return decode_batch(chunk, checked).records


def _decode_marks(view: memoryview, pos: int) -> tuple[list[Mark], int]:
    (n_marks,) = MARK_COUNT.unpack_from(view, pos)
    pos += MARK_COUNT.size
    marks = []
    for _ in range(n_marks):
        topic_len, partition, run, first, prev, sent_before, count, last = MARK.unpack_from(
            view, pos
        )
        pos += MARK.size
        topic = str(view[pos : pos + topic_len], "utf-8")
        pos += topic_len
        if pos > len(view):
            raise EnvelopeError("records batch truncated in its marks")
        marks.append(Mark(topic, partition, run, first, prev, sent_before, count, last))
    return marks, pos


def decode_batch(chunk: bytes | bytearray | memoryview, checked: bool = False) -> Batch:
    """The records (and v2 marks) of a batch; EnvelopeError if it is corrupt or truncated.

    checked: is_records() already verified the header and checksum.
    """
    view = memoryview(chunk)
    if len(view) < BATCH.size:
        raise EnvelopeError(f"batch shorter than its header ({len(view)} bytes)")
    magic, version, _flags, count, crc = BATCH.unpack_from(view)
    if magic != MAGIC:
        raise EnvelopeError("not a records batch (bad magic)")
    if version not in VERSIONS:
        raise EnvelopeError(f"unsupported records batch version {version}")
    if not checked and zlib.crc32(view[BATCH.size :]) != crc:
        raise EnvelopeError("records batch checksum mismatch")
    records: list[Record] = []
    append = records.append
    unpack_record = RECORD.unpack_from
    unpack_header = HEADER_ITEM.unpack_from
    pos = BATCH.size
    end = len(view)
    marks: list[Mark] = []
    try:
        if version == VERSION_MARKS:
            marks, pos = _decode_marks(view, pos)
        for _ in range(count):
            value_len, key_len, topic_len, partition, offset, timestamp, n_headers = unpack_record(
                view, pos
            )
            pos += RECORD.size
            if value_len == NULL_VALUE:
                value = None
            else:
                value = bytes(view[pos : pos + value_len])
                pos += value_len
            key = None
            if key_len >= 0:
                key = bytes(view[pos : pos + key_len])
                pos += key_len
            topic = None
            if topic_len:
                topic = str(view[pos : pos + topic_len], "utf-8")
                pos += topic_len
            headers = []
            for _ in range(n_headers):
                name_len, header_len = unpack_header(view, pos)
                pos += HEADER_ITEM.size
                name = str(view[pos : pos + name_len], "utf-8")
                pos += name_len
                header_value = None
                if header_len >= 0:
                    header_value = bytes(view[pos : pos + header_len])
                    pos += header_len
                headers.append((name, header_value))
            if pos > end:
                raise EnvelopeError("records batch truncated")
            append(Record(value, key, topic, partition, offset, timestamp, headers))
    except (struct.error, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"records batch corrupt: {exc}") from None
    if pos != end:
        raise EnvelopeError(f"records batch has {end - pos} trailing bytes")
    if version == VERSION_MARKS:
        marked = sum(mark.count for mark in marks)
        sourced = sum(1 for record in records if has_source(record))
        if marked != sourced:
            raise EnvelopeError(
                f"records batch marks count {marked} records, the batch holds {sourced}"
            )
    return Batch(version, records, marks)
