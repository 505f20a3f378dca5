"""Packet authentication (wire v2, docs/wire-protocol.md "Authentication"): the trailer and the
StartUp payload. The receiver's session rules are in ddc.protocol.auth_session.

Trailer, appended to **every** datagram (StartUp, HeartBeat, Shutdown, data, parity)::

    key_id (u8) || tag (16 bytes)
    tag = HMAC-SHA256(key[key_id], session_id || datagram || key_id)[:16]

where `datagram` is the whole datagram before the trailer (header + payload) and `session_id` the
8 bytes of the sender's current session, announced in its StartUp. The header's length field
counts the payload only, so a signed datagram is 9 + length + 17 bytes long.

StartUp payload (auth on)::

    session_id (8 random bytes) || start_time_ms (u64 LE, sender's wall clock)
    || descriptor_len (u16 LE) || descriptor (UTF-8 JSON object)

The descriptor has at least ``{"name": str, "envelope": "raw"|"records", "max_packet_size": int,
"fec": [K, M] | null}``; other keys are allowed and ignored. A StartUp's tag uses its own
session_id.

HMAC-SHA256 from the standard library; tags are compared with hmac.compare_digest (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

from ddc.protocol.auth_keys import KeySet

SESSION_ID_SIZE = 8
TAG_SIZE = 16
TRAILER_SIZE = 1 + TAG_SIZE  # 17
STARTUP_FIXED = struct.Struct("<8sQH")  # session_id, start_time_ms, descriptor_len
ENVELOPES = ("raw", "records")

Buffer = bytes | bytearray | memoryview
Payload = Buffer


def _base(key: bytes, session_id: bytes) -> Any:
    """An HMAC-SHA256 object already fed with the session id: copied per datagram."""
    base = hmac.new(key, digestmod=hashlib.sha256)
    base.update(session_id)
    return base


def compute_tag(key: bytes, session_id: bytes, body: Buffer, key_id: int) -> bytes:
    """The 16-byte tag of `body` (the datagram before its trailer)."""
    mac = _base(key, session_id)
    mac.update(body)
    mac.update(bytes((key_id,)))
    return mac.digest()[:TAG_SIZE]


class Signer:
    """The sender's side: appends the trailer of its session to every datagram."""

    def __init__(self, keys: KeySet, session_id: bytes) -> None:
        if len(session_id) != SESSION_ID_SIZE:
            raise ValueError(f"session_id must be {SESSION_ID_SIZE} bytes")
        self.session_id = session_id
        self.key_id = keys.signing_id
        self._id_byte = bytes((self.key_id,))
        self._base = _base(keys.signing_key, session_id)

    def trailer(self, body: Buffer) -> bytes:
        mac = self._base.copy()
        mac.update(body)
        mac.update(self._id_byte)
        return self._id_byte + mac.digest()[:TAG_SIZE]

    def trailer_of(self, parts: list[Payload]) -> bytes:
        """The trailer of the datagram made of `parts` (header, payload: no join needed)."""
        mac = self._base.copy()
        for part in parts:
            mac.update(part)
        mac.update(self._id_byte)
        return self._id_byte + mac.digest()[:TAG_SIZE]

    def sign(self, body: Buffer) -> bytes:
        """`body` with its trailer."""
        return bytes(body) + self.trailer(body)


class Verifier:
    """Checks trailers against one session id with a set of keys (hmac objects cached per key)."""

    def __init__(self, keys: KeySet, session_id: bytes) -> None:
        self.session_id = session_id
        self._bases = {key_id: _base(key, session_id) for key_id, key in keys.keys.items()}

    def has_key(self, key_id: int) -> bool:
        return key_id in self._bases

    def valid(self, datagram: Buffer, size: int) -> bool:
        """True when the last TRAILER_SIZE bytes of datagram[:size] are a valid trailer."""
        view = memoryview(datagram)
        body_end = size - TRAILER_SIZE
        key_id = view[body_end]
        base = self._bases.get(key_id)
        if base is None:
            return False
        mac = base.copy()
        mac.update(view[: body_end + 1])  # the body, then the key id byte
        return hmac.compare_digest(mac.digest()[:TAG_SIZE], view[body_end + 1 : size])


# --- StartUp payload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartUpInfo:
    session_id: bytes
    start_time_ms: int
    descriptor: dict[str, Any]


def new_session_id() -> bytes:
    return os.urandom(SESSION_ID_SIZE)


def now_ms() -> int:
    return int(time.time() * 1000)


def descriptor(
    name: str, envelope: str, max_packet_size: int, fec: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The descriptor an ingress announces (the minimum §2a requires)."""
    return {
        "name": name,
        "envelope": envelope,
        "max_packet_size": max_packet_size,
        "fec": list(fec) if fec else None,
    }


def encode_startup(session_id: bytes, start_time_ms: int, desc: dict[str, Any]) -> bytes:
    """The StartUp payload; ValueError when the descriptor is not a valid one."""
    problem = descriptor_problem(desc)
    if problem:
        raise ValueError(problem)
    text = json.dumps(desc, separators=(",", ":"), sort_keys=True).encode()
    return STARTUP_FIXED.pack(session_id, start_time_ms, len(text)) + text


def decode_startup(payload: Buffer) -> StartUpInfo | str:
    """The StartUp payload's fields, or why it is malformed (a string)."""
    data = bytes(payload)
    if len(data) < STARTUP_FIXED.size:
        return "startup payload shorter than its fixed fields"
    session_id, start_time_ms, length = STARTUP_FIXED.unpack_from(data)
    if len(data) != STARTUP_FIXED.size + length:
        return "startup descriptor_len does not match the payload"
    try:
        desc = json.loads(data[STARTUP_FIXED.size :].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "startup descriptor is not UTF-8 JSON"
    problem = descriptor_problem(desc)
    if problem:
        return problem
    return StartUpInfo(session_id, start_time_ms, desc)


def descriptor_problem(desc: Any) -> str | None:
    """Why `desc` is not a valid descriptor, or None."""
    if not isinstance(desc, dict):
        return "descriptor is not a JSON object"
    if not isinstance(desc.get("name"), str):
        return "descriptor name must be a string"
    if desc.get("envelope") not in ENVELOPES:
        return "descriptor envelope must be raw or records"
    size = desc.get("max_packet_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return "descriptor max_packet_size must be a positive integer"
    fec = desc.get("fec", "absent")
    if fec is not None and not (
        isinstance(fec, list)
        and len(fec) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in fec)
    ):
        return "descriptor fec must be [K, M] or null"
    return None
