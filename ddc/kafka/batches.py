"""Record batches the consumer cannot decode: which codec, and whether the libraries are there.

A Kafka record batch is compressed as a whole (gzip, snappy, lz4 or zstd, chosen by the
producer). kafka-python decompresses it while poll() iterates it and raises from poll():
  UnsupportedCodecError  the codec's library is not installed, or the codec id is unknown
  CorruptRecordError     the batch or a record fails its CRC check
  UndecodableBatch       the codec library rejected the compressed bytes (install_guard())
Such an error is about one batch of one partition, never about the broker: the Kafka source
reports it with the codec, topic, partition and offset (BatchError) and retries that partition
alone (see ddc.ingress.sources.kafka).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import errors as kafka_errors

CODECS = ("gzip", "snappy", "lz4", "zstd")
# codec -> (module kafka-python imports, the distribution that provides it)
LIBRARIES = {
    "snappy": ("snappy", "python-snappy"),
    "lz4": ("lz4.frame", "lz4"),
    "zstd": ("zstandard", "zstandard"),
}
_DECODERS = {
    "gzip_decode": "gzip",
    "snappy_decode": "snappy",
    "lz4_decode": "lz4",
    "lz4_decode_old_kafka": "lz4",
    "zstd_decode": "zstd",
}
_GUARDED = ("kafka.record.default_records", "kafka.record.legacy_records")


class UndecodableBatch(kafka_errors.KafkaError):
    """The codec's library failed on a batch's compressed bytes."""

    def __init__(self, codec: str, cause: BaseException) -> None:
        super().__init__(f"{codec} decompression failed: {cause!r}")
        self.codec = codec
        self.cause = cause


BATCH_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.UnsupportedCodecError,
    kafka_errors.CorruptRecordError,
    UndecodableBatch,
)


@dataclass(frozen=True, slots=True)
class BatchError:
    """One batch the source could not read: where it is and why."""

    codec: str  # gzip | snappy | lz4 | zstd | unknown(N) | "" (not known: a CRC failure)
    topic: str
    partition: int
    offset: int  # the first offset not read (the batch's start, or the fetch position in it)
    reason: str

    def describe(self) -> str:
        codec = self.codec or "codec not known"
        return (
            f"undecodable record batch ({codec}) in {self.topic}/{self.partition} "
            f"at offset {self.offset}: {self.reason}"
        )


def codec_of(exc: BaseException) -> str:
    """The codec an error from BATCH_ERRORS is about ("" when the error does not say)."""
    if isinstance(exc, UndecodableBatch):
        return exc.codec
    text = str(exc)
    match = re.search(r"Libraries for (\w+) compression", text)
    if match:
        return match.group(1)
    match = re.search(r"Unrecognized compression type: (\S+)", text)
    if match:
        return f"unknown({match.group(1)})"
    return ""


def missing_libraries() -> list[str]:
    """Distributions to install for the codecs whose library cannot be imported."""
    missing = []
    for module, distribution in LIBRARIES.values():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    return missing


def missing_text() -> str:
    """One line naming the codec libraries to install ("" when none is missing)."""
    missing = missing_libraries()
    if not missing:
        return ""
    return (
        f"compression libraries not installed: {', '.join(missing)} (batches so compressed "
        f"cannot be read: pip install {' '.join(missing)})"
    )


def describe(exc: BaseException) -> str:
    """The reason an error from BATCH_ERRORS gives, with what to install when a library is
    missing."""
    text = str(exc)  # kafka-python's errors begin with their class name, others do not
    if not text.startswith(type(exc).__name__):
        text = f"{type(exc).__name__}: {text}"
    if "Libraries for" in text and missing_libraries():
        text += f"; {missing_text()}"
    return text


def _guarded(decode: Callable[..., Any], codec: str) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return decode(*args, **kwargs)
        except (NotImplementedError, MemoryError):
            raise
        except Exception as exc:
            raise UndecodableBatch(codec, exc) from exc

    guarded.__wrapped__ = decode  # type: ignore[attr-defined]
    return guarded


def install_guard() -> None:
    """Make the record modules' decode functions raise UndecodableBatch naming the codec.

    kafka-python calls them by module-level names (`from kafka.codec import gzip_decode, ...`);
    each is replaced once by a wrapper. Called by ddc.kafka.adapter inside the tested range.
    """
    for name in _GUARDED:
        module = importlib.import_module(name)
        for function, codec in _DECODERS.items():
            decode = getattr(module, function, None)
            if decode is not None and not hasattr(decode, "__wrapped__"):
                setattr(module, function, _guarded(decode, codec))
