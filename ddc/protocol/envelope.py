"""Chunk envelopes (docs/wire-protocol.md): `raw` (the record's bytes) and `records` (a
checksummed batch).

records batch v1, little-endian:
    b"DDCR" | version u8 (1) | flags u8 (0) | count u32 | crc32 u32 of the body | body
    body = count × record:
        value_len u32 (0xFFFFFFFF: null value, a Kafka tombstone) | key_len i32 (-1: no key) | topic_len u16 | partition i32 | offset i64
        | timestamp_ms i64 | header_count u16 | value | key | topic (UTF-8)
        | header_count × (name_len u16 | value_len i32 (-1: None) | name (UTF-8) | value)
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from ddc.errors import EnvelopeError
from ddc.protocol.record import Record

MAGIC = b"DDCR"
VERSION = 1
BATCH = struct.Struct("<4sBBII")
RECORD = struct.Struct("<IiHiqqH")
HEADER_ITEM = struct.Struct("<Hi")
VALUE_LEN = struct.Struct("<I")
NULL_VALUE = 0xFFFFFFFF
# everything of a value-only record after value_len: no key, topic, partition, offset, timestamp, headers
_BARE_TAIL = RECORD.pack(0, -1, 0, -1, -1, -1, 0)[VALUE_LEN.size :]
BATCH_OVERHEAD = BATCH.size
RECORD_OVERHEAD = RECORD.size


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


def encode_records(items: Iterable[Record | bytes]) -> bytes:
    """One records-envelope chunk holding `items` (Record objects or plain values)."""
    parts: list = [b""]
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
    return BATCH.pack(MAGIC, VERSION, 0, count, zlib.crc32(body)) + body


def is_records(chunk: bytes | bytearray | memoryview) -> bool:
    """True when `chunk` carries a valid records batch header and checksum."""
    if len(chunk) < BATCH.size or bytes(chunk[:4]) != MAGIC:
        return False
    _, version, _, _, crc = BATCH.unpack_from(chunk)
    return version == VERSION and zlib.crc32(memoryview(chunk)[BATCH.size :]) == crc


def decode_records(chunk: bytes | bytearray | memoryview, checked: bool = False) -> list[Record]:
    """The records of a batch; EnvelopeError if it is corrupt or truncated.

    checked: is_records() already verified the header and checksum.
    """
    view = memoryview(chunk)
    if len(view) < BATCH.size:
        raise EnvelopeError(f"batch shorter than its header ({len(view)} bytes)")
    magic, version, _flags, count, crc = BATCH.unpack_from(view)
    if magic != MAGIC:
        raise EnvelopeError("not a records batch (bad magic)")
    if version != VERSION:
        raise EnvelopeError(f"unsupported records batch version {version}")
    if not checked and zlib.crc32(view[BATCH.size :]) != crc:
        raise EnvelopeError("records batch checksum mismatch")
    records: list[Record] = []
    append = records.append
    unpack_record = RECORD.unpack_from
    unpack_header = HEADER_ITEM.unpack_from
    pos = BATCH.size
    end = len(view)
    try:
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
    return records
