"""An independent implementation of the wire v2 authentication trailer and StartUp payload,
written from the specification (docs/wire-protocol.md "Authentication") only.

It shares no code with `ddc.protocol` (no `ddc` import): tests sign with it and verify with ddc,
and the other way round, so both agree with the documented format, not merely with each other.

    trailer = key_id (u8) || HMAC-SHA256(key, session_id || datagram || key_id)[:16]
    StartUp payload = session_id (8) || start_time_ms (u64 LE) || descriptor_len (u16 LE) || JSON
"""

from __future__ import annotations

import hashlib
import hmac
import json

HEADER_LEN = 9
TRAILER_LEN = 17
STARTUP, HEARTBEAT, DATA_FIRST, DATA, SHUTDOWN = 1, 2, 3, 4, 5


def header(kind: int, seq: int, length: int, remaining: int = 0) -> bytes:
    return (
        bytes([kind])
        + (seq % 2**32).to_bytes(4, "little")
        + length.to_bytes(2, "little")
        + remaining.to_bytes(2, "little")
    )


def tag(key: bytes, session_id: bytes, datagram: bytes, key_id: int) -> bytes:
    return hmac.new(key, session_id + datagram + bytes([key_id]), hashlib.sha256).digest()[:16]


def sign(key_id: int, key: bytes, session_id: bytes, datagram: bytes) -> bytes:
    return datagram + bytes([key_id]) + tag(key, session_id, datagram, key_id)


def verify(keys: dict[int, bytes], session_id: bytes, signed: bytes) -> bytes:
    """The datagram without its trailer; ValueError when the trailer is not valid."""
    if len(signed) < HEADER_LEN + TRAILER_LEN:
        raise ValueError("too short for a header and a trailer")
    datagram, key_id, got = signed[:-TRAILER_LEN], signed[-TRAILER_LEN], signed[-16:]
    if key_id not in keys:
        raise ValueError(f"unknown key id {key_id}")
    if not hmac.compare_digest(got, tag(keys[key_id], session_id, datagram, key_id)):
        raise ValueError("bad tag")
    return datagram


def startup_payload(session_id: bytes, start_time_ms: int, descriptor: dict) -> bytes:
    text = json.dumps(descriptor).encode("utf-8")
    return session_id + start_time_ms.to_bytes(8, "little") + len(text).to_bytes(2, "little") + text


def parse_startup_payload(payload: bytes) -> tuple[bytes, int, dict]:
    session_id = payload[:8]
    start_time_ms = int.from_bytes(payload[8:16], "little")
    length = int.from_bytes(payload[16:18], "little")
    if len(payload) != 18 + length:
        raise ValueError("descriptor_len does not match")
    return session_id, start_time_ms, json.loads(payload[18:].decode("utf-8"))


def startup(key_id: int, key: bytes, session_id: bytes, start_time_ms: int, desc: dict) -> bytes:
    payload = startup_payload(session_id, start_time_ms, desc)
    return sign(key_id, key, session_id, header(STARTUP, 0, len(payload)) + payload)


def data(key_id: int, key: bytes, session_id: bytes, seq: int, payload: bytes) -> bytes:
    return sign(key_id, key, session_id, header(DATA_FIRST, seq, len(payload)) + payload)
