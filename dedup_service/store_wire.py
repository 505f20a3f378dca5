"""How ids and claims travel between the store and its Lua scripts (lua.py): the shard of an id,
the JSON payloads of ids and fingerprints, the digit-string replies scattered back into input
order, and a claim's stored value."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

SHARDS = 64


@dataclass(frozen=True, slots=True)
class Claim:
    state: str  # pending | committed
    links_mask: int
    first_index: int
    fingerprint: str
    ttl_ms: int


def parse_claim(raw: bytes, ttl_ms: int, now_ms: int = 0) -> Claim | None:
    """A stored claim (lua.py's layout); `ttl_ms` its key's TTL, `now_ms` Redis's time: a pending
    claim's ttl is what is left of its lease."""
    try:
        state, mask, first, fp, *pending = raw.decode().split("|")
        until = pending[2] if len(pending) == 3 else ""
        if state == "P" and until.isdigit():
            ttl_ms = int(until) - now_ms
        return Claim(
            "pending" if state == "P" else "committed", int(mask), int(first), fp, max(ttl_ms, 0)
        )
    except ValueError:
        return None


def claim_since(raw: bytes | None) -> int | None:
    """The time (ms) of the first unsettled claim a pending claim holds; None for any other."""
    if raw is None or not raw.startswith(b"P|"):
        return None
    fields = raw.split(b"|")
    since = fields[5] if len(fields) == 7 else b""
    return int(since) if since.isdigit() and len(since) > 1 else None


def shard_of(ident: str) -> int:
    return zlib.crc32(ident.encode()) % SHARDS


def encode(values: Sequence[Any]) -> bytes:
    """Compact UTF-8 JSON (ids are valid Unicode: the API refuses lone surrogates)."""
    return orjson.dumps(values)


def rows(ids: Sequence[str], columns: Sequence[Sequence[Any]], indices: list[int]) -> bytes:
    """The JSON array [id, column values..., id, ...] of the ids at `indices`."""
    return encode([value for i in indices for value in (ids[i], *(c[i] for c in columns))])


def scatter(size: int, groups: dict[int, list[int]], replies: list[bytes]) -> list[int]:
    """Per-shard digit strings back into one result per id, in input order."""
    results = [0] * size
    for indices, reply in zip(groups.values(), replies, strict=True):
        for index, digit in zip(indices, reply, strict=True):
            results[index] = digit - 48
    return results
