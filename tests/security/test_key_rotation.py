"""Key rotation under traffic, as docs/security.md tells an operator to do it: add key 2 on the
egress (SIGHUP), switch the ingress to it (SIGHUP), remove key 1 from the egress (SIGHUP).
Nothing is lost and no genuine datagram is refused."""

from __future__ import annotations

import signal
import threading

from ddc.protocol.auth_keys import new_key_line
from devtools.harness import wait_until
from tests.integration.streams import indexes, make_record, send_udp_paced
from tests.security.conftest import write_keys
from tests.security.test_spoofing import failures

COUNT = 12_000  # about 8 s of traffic at the rate below


def hup(daemon) -> None:
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)


def test_rotation_under_traffic_loses_and_refuses_nothing(auth_pairs, tmp_path, key_line):
    key2 = new_key_line(2)
    ingress_keys = write_keys(tmp_path / "ingress.keys", key_line)
    egress_keys = write_keys(tmp_path / "egress.keys", key_line)
    pair, collector = auth_pairs(
        transport={"auth_keys": str(ingress_keys)},
        egress_transport={"auth_keys": str(egress_keys)},
    )
    ingress, egress = pair.ingress, pair.egress
    assert ingress.health()["auth_key_id"] == 1
    records = [make_record(i, 300) for i in range(COUNT)]
    sender = threading.Thread(
        target=send_udp_paced, args=(pair.source_port, records, 1500 * 328), daemon=True
    )
    sender.start()
    wait_until(lambda: len(collector.records) > 1000, 20, message="traffic flowing")
    # 1. the egress accepts keys 1 and 2
    write_keys(egress_keys, key_line, key2)
    hup(egress)
    wait_until(lambda: egress.health()["auth"]["key_ids"] == [1, 2], 10)
    # 2. the ingress signs with key 2 (its last line)
    write_keys(ingress_keys, key_line, key2)
    hup(ingress)
    wait_until(lambda: ingress.health()["auth_key_id"] == 2, 10)
    # what the ingress signed with key 1 is behind the next two HeartBeats on the wire
    beats = 'ddc_egress_packets_received_total{type="heartbeat"}'
    seen = egress.metric(beats)
    wait_until(lambda: egress.metric(beats) >= seen + 2, 10, message="two HeartBeats")
    # 3. key 1 is removed from the egress
    write_keys(egress_keys, key2)
    hup(egress)
    wait_until(lambda: egress.health()["auth"]["key_ids"] == [2], 10)
    assert sender.is_alive(), "the rotation must happen under traffic"
    sender.join(60)
    got = collector.wait_for(COUNT, timeout=60)
    assert indexes(got) == list(range(COUNT))
    assert failures(egress) == dict.fromkeys(failures(egress), 0)
    assert egress.metric("ddc_egress_packets_lost_total") == 0
    assert egress.health()["auth"]["session"] is not None and egress.health()["link_up"]
    assert "SIGHUP: key file" in ingress.log() and "signing with key 2" in ingress.log()
