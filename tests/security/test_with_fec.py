"""Authentication and FEC together (the shipped k8s pair): parity packets are signed and
verified like data, FEC repairs what the trailer let through, nothing is refused."""

from __future__ import annotations

from tests.integration.streams import indexes, make_record, send_udp_paced
from tests.security.test_spoofing import failures


def test_signed_fec_stream_is_delivered_whole(auth_pairs):
    pair, collector = auth_pairs(
        transport={"max_packet_size": 1472, "fec_data": 8, "fec_parity": 2}
    )
    records = [make_record(i, 3000) for i in range(300)]
    send_udp_paced(pair.source_port, records, 2e6)
    got = collector.wait_for(300, timeout=30)
    assert indexes(got) == list(range(300)) and got == records
    metrics = pair.egress.metrics()
    assert metrics['ddc_egress_packets_received_total{type="parity"}'] > 0
    assert sum(failures(pair.egress).values()) == 0
    assert metrics["ddc_egress_packets_lost_total"] == 0
    assert pair.egress.health()["fec"] == {"data": 8, "parity": 2, "interleave": 1}
