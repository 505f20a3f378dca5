"""How record values are laid out in a byte stream (TCP sinks, file sinks)."""

from __future__ import annotations

from collections.abc import Iterable

from ddc.protocol.record import Record


def framed(records: Iterable[Record], framing: str = "length_prefixed") -> bytes:
    """The values of `records` (a tombstone's null value as empty) laid out per `framing`:
    length_prefixed, each after its length as 4 bytes big-endian; lines, each followed by "\n";
    none, back to back."""
    parts: list[bytes | bytearray | memoryview] = []
    for record in records:
        value = record.value or b""
        if framing == "length_prefixed":
            parts.append(len(value).to_bytes(4, "big"))
            parts.append(value)
        elif framing == "lines":
            parts.append(value)
            parts.append(b"\n")
        else:
            parts.append(value)
    return b"".join(parts)
