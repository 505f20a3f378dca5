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


def parse_claim(raw: bytes, ttl_ms: int) -> Claim | None:
    try:
        state, mask, first, fp, _token = raw.decode().split("|", 4)
        return Claim(
            "pending" if state == "P" else "committed", int(mask), int(first), fp, max(ttl_ms, 0)
        )
    except ValueError:
        return None


def shard_of(ident: str) -> int:
    return zlib.crc32(ident.encode()) % SHARDS


def encode(values: Sequence[Any]) -> bytes:
    """Compact UTF-8 JSON (ids are valid Unicode: the API refuses lone surrogates)."""
    return orjson.dumps(values)


def flat_pairs(ids: Sequence[str], fingerprints: Sequence[str], indices: list[int]) -> list[str]:
    return [text for index in indices for text in (ids[index], fingerprints[index])]


def pairs(ids: Sequence[str], fingerprints: Sequence[str], indices: list[int]) -> bytes:
    return encode(flat_pairs(ids, fingerprints, indices))


def scatter(size: int, groups: dict[int, list[int]], replies: list[bytes]) -> list[int]:
    """Per-shard digit strings back into one result per id, in input order."""
    results = [0] * size
    for indices, reply in zip(groups.values(), replies, strict=True):
        for index, digit in zip(indices, reply, strict=True):
            results[index] = digit - 48
    return results
