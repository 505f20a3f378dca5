"""Record ids (`id_from`) and content fingerprints.

id_from is one of: `id` (the record's explicit id: the API's `id` field, else the `ddc-id`
header), `key` (the Kafka key), `header:NAME`, `json:path.to.field` (a field of the JSON value;
integer segments index lists), `source` (the `ddc-src` header, "topic/partition/offset" of the
original Kafka record: exact even without a business id) or `hash` (of key and value).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from ddc.kafka.records import SRC_HEADER
from ddc.protocol.record import Record
from dedup_service.errors import InvalidRecord

ID_HEADER = "ddc-id"
IDEMPOTENCY_HEADER = "ddc-dedup-id"  # the forwarder puts each record's id here
MAX_ID_LENGTH = 1024
SIMPLE_KINDS = ("id", "key", "source", "hash")


@dataclass(frozen=True, slots=True)
class IdSpec:
    kind: str  # id | key | header | json | source | hash
    header: str = ""
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "header":
            return f"header:{self.header}"
        if self.kind == "json":
            return "json:" + ".".join(self.path)
        return self.kind


def parse_id_from(text: str) -> IdSpec:
    """The IdSpec of an `id_from` setting; ValueError naming the accepted forms otherwise."""
    if text in SIMPLE_KINDS:
        return IdSpec(text)
    kind, sep, arg = text.partition(":")
    if sep and kind == "header" and arg:
        return IdSpec("header", header=arg)
    if sep and kind == "json" and arg and all(arg.split(".")):
        return IdSpec("json", path=tuple(arg.split(".")))
    raise ValueError(
        f"invalid id_from {text!r} (expected id | key | header:NAME | json:path.to.field | source | hash)"
    )


def identity_basis(record: Record) -> Record:
    """The record ids and fingerprints are computed from: a tombstone's null value as empty."""
    return record if record.value is not None else dataclasses.replace(record, value=b"")


def text_of(data: bytes) -> str:
    """Bytes as an id string: UTF-8 when they decode, else "b64:" and their base64."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(data).decode("ascii")


def header_value(record: Record, name: str) -> bytes | None:
    for header_name, value in record.headers:
        if header_name == name:
            return value
    return None


def _header_text(record: Record, name: str) -> str | None:
    raw = header_value(record, name)
    return None if raw is None else text_of(raw)


def _parse_json(value: bytes) -> tuple[Any, bool]:
    """(json.loads(value), whether orjson parsed it); ValueError when json refuses it.

    orjson (about 6x faster on a 200-byte record) decides only what json would decide the same:
    what it refuses (NaN, Infinity, a BOM, UTF-16/32, lone surrogates, nesting past 1024, bad
    JSON) is left to json; what it accepts, json accepts with the same values, except integers
    beyond 64 bits, which orjson turns into floats (the caller asks json again for a float)."""
    try:
        return orjson.loads(value), True
    except orjson.JSONDecodeError:
        return json.loads(value), False


def _json_field(value: bytes, path: tuple[str, ...]) -> str:
    try:
        node, fast = _parse_json(value)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deep for json: not
        raise InvalidRecord("value is not JSON") from None  # a 500
    found = _json_node(node, path)
    if fast and isinstance(found, float):  # perhaps an integer beyond 64 bits: json's answer
        found = _json_node(json.loads(value), path)
    if isinstance(found, bool) or not isinstance(found, str | int):
        raise InvalidRecord(f"JSON field {'.'.join(path)!r} is not a string or an integer")
    return str(found)


def _json_node(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidRecord(f"JSON value has no field {'.'.join(path)!r}")
    return node


_LENGTH = struct.Struct(">i")


def _content_digest(record: Record, size: int) -> str:
    """BLAKE2b of the key's length (-1: none), the key and the value, in one update."""
    key = record.key
    if key is None:
        data = _LENGTH.pack(-1) + (record.value or b"")
    else:
        data = _LENGTH.pack(len(key)) + key + (record.value or b"")
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def fingerprint(record: Record) -> str:
    """16 hex chars of BLAKE2b over key and value: what `conflict` compares."""
    return _content_digest(record, 8)


def extract_id(spec: IdSpec, record: Record, explicit_id: str | None = None) -> str:
    """The record's id under `spec`; InvalidRecord when it has none."""
    if spec.kind == "id":
        found = explicit_id if explicit_id is not None else _header_text(record, ID_HEADER)
        missing = f"no id (neither an 'id' field nor a {ID_HEADER!r} header)"
    elif spec.kind == "key":
        found = None if record.key is None else text_of(record.key)
        missing = "no key"
    elif spec.kind in ("header", "source"):
        name = spec.header if spec.kind == "header" else SRC_HEADER
        found = _header_text(record, name)
        missing = f"no {name!r} header"
    elif spec.kind == "json":
        found = _json_field(record.value or b"", spec.path)
        missing = "empty JSON id"
    else:
        return _content_digest(record, 16)
    if not found:
        raise InvalidRecord(missing)
    if len(found) > MAX_ID_LENGTH:
        raise InvalidRecord(f"id longer than {MAX_ID_LENGTH} characters")
    return found
