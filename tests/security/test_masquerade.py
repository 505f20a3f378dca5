"""The raw-batch masquerade: a raw datagram that happens to be a valid records batch crosses a
raw pair (real daemons) as the same bytes, never as the records its author chose."""

from __future__ import annotations

from ddc.protocol.envelope import encode_records, is_records
from ddc.protocol.record import Record
from tests.integration.streams import Collector, send_udp_paced


def test_a_raw_datagram_that_is_a_records_batch_comes_out_as_the_same_bytes(pairs):
    pair = pairs(source="udp", sink="udp")
    collector = Collector("udp", pair.sink_port)
    collector.start()
    try:
        pair.start()
        forged = encode_records(
            [Record(b"x" * 10, key=b"k", headers=[("h", b"v")], topic="victim")] * 3
        )
        assert is_records(forged)
        send_udp_paced(pair.source_port, [forged, b"plain"], 1e6)
        assert collector.wait_for(2, timeout=20) == [forged, b"plain"]
        assert pair.egress.metric("ddc_egress_records_delivered_total") == 2
    finally:
        collector.stop()
