"""The egress envelope is configured, never guessed: its default follows the sink type, and a raw
record that happens to parse as a records batch comes out as the same bytes."""

from __future__ import annotations

import pytest

from ddc.config import load_config
from ddc.egress.deliver import Deliverer
from ddc.egress.sinks.base import Done, Sink
from ddc.egress.spool.memory import MemorySpool
from ddc.metrics import EgressMetrics
from ddc.protocol.envelope import encode_records, is_records
from ddc.protocol.record import Record

SINKS = {
    "udp": 'target = "127.0.0.1:7002"',
    "tcp": 'target = "127.0.0.1:7002"',
    "file": 'path = "out.bin"',
    "kafka": 'bootstrap_servers = "127.0.0.1:9092"\ntopic = "t"',
    "dedup": 'url = "http://127.0.0.1:8080"\nlink = "a"',
}


def egress(tmp_path, sink: str, envelope: str | None) -> dict:
    line = f'envelope = "{envelope}"\n' if envelope else ""
    path = tmp_path / "egress.toml"
    path.write_text(
        f'[egress]\n[egress.transport]\nlisten = "127.0.0.1:7001"\n{line}'
        f'[egress.sink]\ntype = "{sink}"\n{SINKS[sink]}\n'
    )
    return load_config(path, "egress", environ={})


@pytest.mark.parametrize(
    ("sink", "expected"),
    [("udp", "raw"), ("tcp", "raw"), ("file", "raw"), ("kafka", "records"), ("dedup", "records")],
)
def test_default_follows_the_sink_type_and_auto_means_the_same(tmp_path, sink, expected):
    assert egress(tmp_path, sink, None)["transport"]["envelope"] == expected
    assert egress(tmp_path, sink, "auto")["transport"]["envelope"] == expected
    for explicit in ("raw", "records"):
        assert egress(tmp_path, sink, explicit)["transport"]["envelope"] == explicit


class Collect(Sink):
    def __init__(self) -> None:
        super().__init__({}, EgressMetrics())
        self.records: list[Record] = []

    def send(self, records: list[Record], done: Done) -> None:
        self.records += records
        done()


def test_a_raw_record_that_parses_as_a_batch_is_delivered_as_the_same_bytes(tmp_path):
    """Regression: with the old egress default `auto`, a 162-byte raw datagram that is a valid
    records batch came out as 3 records with the topic and headers its author chose."""
    forged = encode_records(
        [Record(b"x" * 10, key=b"k", headers=[("h", b"v")], topic="victim")] * 3
    )
    assert is_records(forged)
    sink = Collect()
    envelope = egress(tmp_path, "udp", None)["transport"]["envelope"]  # a raw pair's egress
    deliverer = Deliverer(envelope, MemorySpool(1 << 20), sink, EgressMetrics())
    records = deliverer.records_of(forged)
    assert records is not None and len(records) == 1
    assert bytes(records[0].value) == forged and records[0].topic is None
    assert records[0].headers == [] and records[0].key is None


def test_with_records_configured_a_batch_is_decoded_and_junk_is_counted():
    records = [Record(b"v%d" % i, topic="t") for i in range(3)]
    metrics = EgressMetrics()
    deliverer = Deliverer("records", MemorySpool(1 << 20), Collect(), metrics)
    assert [r.value for r in deliverer.records_of(encode_records(records))] == [b"v0", b"v1", b"v2"]
    assert deliverer.records_of(b"just raw bytes, not a batch") is None
    assert metrics.registry.get_sample_value("ddc_egress_envelope_errors_total") == 1
