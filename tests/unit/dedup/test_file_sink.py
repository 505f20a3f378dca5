"""The dedup service's file sink with `write_ids`: each value behind its dedup id, so a reader
recognises a record forwarded again after a crash between forward and commit."""

import pytest

from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.forwarder import with_idempotency_key
from dedup_service.sinks.file import FileSink, read_with_ids


def sink(tmp_path, **config):
    file_sink = FileSink(
        {"path": str(tmp_path / "out.bin"), "framing": "length_prefixed", "fsync": False, **config}
    )
    file_sink.start()
    return file_sink


def test_a_reforwarded_record_is_recognised_by_its_id(tmp_path):
    file_sink = sink(tmp_path, write_ids=True)
    first = [with_idempotency_key(Record(value=b"v%d" % i), f"id-{i}") for i in range(3)]
    file_sink.send(first)
    file_sink.send([first[1]])  # the service crashed before committing id-1: forwarded again
    file_sink.send([with_idempotency_key(Record(value=None), "id-3")])  # a tombstone: empty value
    file_sink.stop(1.0)
    read = list(read_with_ids((tmp_path / "out.bin").read_bytes()))
    assert read == [
        (b"id-0", b"v0", False),
        (b"id-1", b"v1", False),
        (b"id-2", b"v2", False),
        (b"id-1", b"v1", True),
        (b"id-3", b"", False),
    ]


def test_without_write_ids_only_values_are_written_and_a_record_without_id_is_refused(tmp_path):
    plain = sink(tmp_path)
    plain.send([with_idempotency_key(Record(value=b"v"), "id-0")])
    plain.stop(1.0)
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x00\x00\x01v"
    with_ids = sink(tmp_path, write_ids=True)
    with pytest.raises(SinkFailed, match="ddc-dedup-id"):
        with_ids.send([Record(value=b"no id")])
    with_ids.stop(1.0)
