"""Forged datagrams with the ingress's exact source address and port (raw socket, as root):
with authentication on, none is delivered, each is counted by reason, the genuine link stays up
and keeps delivering."""

from __future__ import annotations

import os

from ddc.protocol.wire import MessageType, encode_header
from devtools.harness import wait_until
from tests.integration.streams import make_record, send_udp_paced
from tests.security.attacker import Spoofer, needs_root


def data_chunk(seq: int, payload: bytes) -> bytes:
    return encode_header(MessageType.DATA_FIRST, seq, len(payload), 0) + payload


def failures(egress) -> dict[str, float]:
    metrics = egress.metrics()
    return {
        reason: metrics[f'ddc_egress_auth_failures_total{{reason="{reason}"}}']
        for reason in ("missing", "unknown_key", "bad_tag", "replay", "stale_session")
    }


@needs_root
def test_forged_datagrams_from_the_ingress_address_are_refused_by_reason(auth_pairs):
    pair, collector = auth_pairs()
    genuine = [make_record(i, 300) for i in range(100)]
    send_udp_paced(pair.source_port, genuine[:50], 5e6)
    collector.wait_for(50, timeout=20)
    ingress_address = ("127.0.0.1", pair.sender_port)
    link = ("127.0.0.1", pair.link_port)
    forged = b"FORGED" * 10
    spoofer = Spoofer()
    try:
        for seq in range(60, 70):  # plain v1 datagrams, ahead of the sequence
            spoofer.send(ingress_address, link, data_chunk(seq, forged))
        spoofer.send(ingress_address, link, encode_header(MessageType.SHUTDOWN, 0, 0))
        for seq in range(70, 75):  # a trailer under a key id the egress does not hold
            spoofer.send(ingress_address, link, data_chunk(seq, forged) + b"\x09" + bytes(16))
        for seq in range(75, 95):  # the right key id, a made-up tag
            spoofer.send(ingress_address, link, data_chunk(seq, forged) + b"\x01" + os.urandom(16))
        startup = encode_header(MessageType.STARTUP, 0, 0)
        spoofer.send(ingress_address, link, startup + b"\x01" + os.urandom(16))
    finally:
        spoofer.close()
    wait_until(lambda: sum(failures(pair.egress).values()) >= 37, 10, message="forgeries counted")
    send_udp_paced(pair.source_port, genuine[50:], 5e6)
    got = collector.wait_for(100, timeout=20)
    assert got == genuine  # every genuine record, in order, and nothing forged
    assert failures(pair.egress) == {
        "missing": 11,  # ten v1 data packets and the Shutdown
        "unknown_key": 5,
        "bad_tag": 21,  # twenty data packets and the StartUp
        "replay": 0,
        "stale_session": 0,
    }
    health = pair.egress.health()
    assert health["link_up"] and health["status"] == "ok"
    assert pair.egress.metrics()["ddc_egress_packets_lost_total"] == 0
    log = pair.egress.log()
    assert f"refused a datagram from 127.0.0.1:{pair.sender_port}: bad_tag" in log
    assert log.count(": bad_tag (") == 1  # one line per reason per interval, not one a packet
