"""Undecodable Kafka record batches: the codec is named, the partition alone is held back."""

from __future__ import annotations

import pytest
from kafka.errors import CorruptRecordError, UnsupportedCodecError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.structs import TopicPartition

from ddc.kafka import adapter, batches
from ddc.kafka.batches import BatchError, UndecodableBatch, codec_of
from ddc.kafka.partitions import BlockedPartitions

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)
CODEC_IDS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def built_batch(codec: str, count: int = 50) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODEC_IDS[codec],
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(count):
        builder.append(i, timestamp=None, key=b"k%d" % i, value=b"v" * 200, headers=[])
    return bytes(builder.build())


def test_every_codec_library_is_installed():
    assert batches.missing_libraries() == []
    assert batches.missing_text() == ""


@pytest.mark.parametrize("codec", batches.CODECS)
def test_every_codec_decodes(codec):
    records = list(DefaultRecordBatch(built_batch(codec)))
    assert [r.key for r in records] == [b"k%d" % i for i in range(50)]


@pytest.mark.parametrize("codec", batches.CODECS)
def test_damaged_compressed_bytes_name_the_codec(codec):
    assert adapter.check_version()  # installs the guard
    data = bytearray(built_batch(codec))
    for i in range(70, len(data) - 8):  # past the 61-byte header: the compressed bytes
        data[i] ^= 0x5A
    with pytest.raises(UndecodableBatch) as caught:
        list(DefaultRecordBatch(bytes(data)))
    assert caught.value.codec == codec
    assert codec_of(caught.value) == codec
    assert isinstance(caught.value, batches.BATCH_ERRORS)


def test_codec_of_kafka_python_messages():
    missing = UnsupportedCodecError("Libraries for snappy compression codec not found")
    assert codec_of(missing) == "snappy"
    assert codec_of(UnsupportedCodecError("Unrecognized compression type: 5")) == "unknown(5)"
    assert codec_of(CorruptRecordError("Record batch ... failed crc check")) == ""


def test_batch_error_names_codec_topic_partition_offset():
    error = BatchError("zstd", "orders", 3, 1200, "UndecodableBatch: bad")
    text = error.describe()
    assert "zstd" in text and "orders/3" in text and "offset 1200" in text


def error(tp: TopicPartition, offset: int) -> BatchError:
    return BatchError("lz4", tp.topic, tp.partition, offset, "bad")


def test_blocked_partition_retried_once_per_failure_and_unblocked_by_a_read_past_it():
    blocked = BlockedPartitions(retry=10.0)
    assert not blocked
    blocked.fail(P0, error(P0, 100), now=0.0)
    assert blocked and [e.offset for e in blocked.errors()] == [100]
    assert blocked.due(9.9) == []
    assert blocked.due(10.0) == [P0]
    assert blocked.due(20.0) == []  # once per failure
    blocked.read(P1, 500)  # another partition: no effect
    blocked.read(P0, 99)  # before the batch: still blocked
    assert blocked
    blocked.read(P0, 100)
    assert not blocked and blocked.errors() == []


def test_forgotten_partitions_are_not_retried():
    blocked = BlockedPartitions(retry=1.0)
    blocked.fail(P0, error(P0, 5), now=0.0)
    blocked.fail(P1, error(P1, 7), now=0.0)
    blocked.forget([P0])
    assert blocked.due(5.0) == [P1]
    assert [e.partition for e in blocked.errors()] == [1]


# --- the Kafka source -----------------------------------------------------------------------


class FailedRecords:
    """kafka-python's next-in-line records of a partition whose batch failed to decode."""

    def __init__(self, tp: TopicPartition, offset: int) -> None:
        self.topic_partition, self.next_fetch_offset = tp, offset
        self.drained = False

    def drain(self) -> None:
        self.drained = True


class Fetcher:
    def __init__(self) -> None:
        self._next_partition_records: FailedRecords | None = None
        self._next_in_line_exception_metadata = None


def test_source_holds_back_only_the_partition_and_never_says_broker_unreachable(
    monkeypatch, caplog
):
    import logging

    from ddc.ingress.sources import kafka as kafka_source
    from tests.unit.kafka.fakes import batch
    from tests.unit.kafka.test_source import Harness

    h = Harness()
    h.source.broker.set(True)
    h.consumer._fetcher = Fetcher()
    h.join(P0, P1)
    failed = FailedRecords(P0, 40)
    h.consumer._fetcher._next_partition_records = failed
    h.consumer.poll_error = UnsupportedCodecError("Libraries for zstd compression codec not found")
    with caplog.at_level(logging.INFO, logger="ddc.ingress.sources.kafka"):
        h.source._step()
    assert failed.drained and h.consumer.paused == {P0}
    assert h.metrics.kafka_batch_errors.labels(codec="zstd")._value.get() == 1
    health = h.source.health()
    assert health["kafka_connected"] is True and health["source_ok"] is False
    assert health["kafka_batch_errors"] == [
        "undecodable record batch (zstd) in t/0 at offset 40: UnsupportedCodecError: "
        "Libraries for zstd compression codec not found"
    ]
    assert "broker unreachable" not in caplog.text
    assert "undecodable record batch (zstd) in t/0 at offset 40" in caplog.text

    h.consumer.poll_error = None
    h.poll(batch("t", 1, 0, 3))  # the other partition flows
    assert [len(records) for records, _ in h.submitted] == [3]
    monkeypatch.setattr(kafka_source.time, "monotonic", lambda: 1e12)
    h.poll({})
    assert h.consumer.paused == set()  # fetched again after BATCH_RETRY
    h.poll(batch("t", 0, 40, 2))
    assert h.source.health()["kafka_batch_errors"] == [] and h.source.health()["source_ok"]
