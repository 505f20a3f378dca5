"""The independent trailer implementation (tests/interop/authpeer.py, no `ddc` import) against
the real daemons: its authenticated packets are delivered by `ddc egress`, and it verifies every
datagram `ddc ingress` emits (StartUp, repeats, HeartBeat, data, Shutdown)."""

from __future__ import annotations

import os
import socket
import time

from devtools.harness import Pair, wait_until
from tests.integration.streams import Collector, make_record, send_udp_paced
from tests.interop import authpeer

KEY_ID, KEY = 7, os.urandom(32)
KIND_NAMES = {1: "startup", 2: "heartbeat", 3: "data_first", 4: "data", 5: "shutdown"}


def key_file(tmp_path) -> str:
    path = tmp_path / "peer.keys"
    path.write_text(f"# the peer's key\n{KEY_ID}:{KEY.hex()}\n")
    path.chmod(0o600)
    return str(path)


def test_peer_signed_packets_are_delivered_by_ddc_egress(tmp_path):
    keys = key_file(tmp_path)
    pair = Pair(tmp_path, "peer", egress_transport={"auth_keys": keys})
    assert pair.sink_port is not None
    collector = Collector("udp", pair.sink_port)
    collector.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        egress = pair.start_egress()
        link = ("127.0.0.1", pair.link_port)
        session = os.urandom(8)
        desc = {"name": "peer", "envelope": "raw", "max_packet_size": 1472, "fec": None}
        start = authpeer.startup(KEY_ID, KEY, session, int(time.time() * 1000), desc)
        for _ in range(3):
            sock.sendto(start, link)
        time.sleep(0.2)
        payloads = [f"record {i} from the peer".encode() for i in range(10)]
        for seq, payload in enumerate(payloads):
            sock.sendto(authpeer.data(KEY_ID, KEY, session, seq, payload), link)
        forged = authpeer.data(KEY_ID, os.urandom(32), session, 10, b"forged")
        sock.sendto(forged, link)
        beat = authpeer.sign(KEY_ID, KEY, session, authpeer.header(authpeer.HEARTBEAT, 10, 0))
        sock.sendto(beat, link)
        assert collector.wait_for(10, timeout=10) == payloads
        wait_until(lambda: egress.health()["link_up"], 5)
        metrics = egress.metrics()
        assert metrics['ddc_egress_auth_failures_total{reason="bad_tag"}'] == 1
        assert metrics["ddc_egress_packets_lost_total"] == 0
        assert egress.health()["auth"]["session"] == session.hex()
    finally:
        sock.close()
        collector.stop()
        pair.stop()


def test_every_datagram_of_ddc_ingress_verifies_with_the_peer(tmp_path):
    keys = key_file(tmp_path)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(0.5)
    pair = Pair(tmp_path, "peer", transport={"auth_keys": keys, "max_packet_size": 1472})
    pair.destination_port = peer.getsockname()[1]
    try:
        ingress = pair.start_ingress()
        records = [make_record(i, 3000) for i in range(5)]  # 3 packets each
        send_udp_paced(pair.source_port, records, 1e6)
        time.sleep(0.5)  # a HeartBeat and a StartUp repeat (every 0.2 s here)
        ingress.stop()
        datagrams = []
        while True:
            try:
                datagrams.append(peer.recv(65536))
            except TimeoutError:
                break
    finally:
        peer.close()
        pair.stop()
    first = datagrams[0]
    assert first[0] == authpeer.STARTUP
    session, start_ms, desc = authpeer.parse_startup_payload(first[9:-17])
    assert desc["name"] == "peer" and desc["envelope"] == "raw" and desc["fec"] is None
    assert desc["max_packet_size"] == 1472
    kinds: dict[str, int] = {}
    chunks, parts = [], b""
    for signed in datagrams:
        assert len(signed) <= 1472
        body = authpeer.verify({KEY_ID: KEY}, session, signed)  # raises unless valid
        kind = body[0]
        kinds[KIND_NAMES[kind]] = kinds.get(KIND_NAMES[kind], 0) + 1
        if kind == authpeer.STARTUP:
            repeat = authpeer.parse_startup_payload(body[9:])
            assert repeat[:2] == (session, start_ms)
        elif kind in (authpeer.DATA_FIRST, authpeer.DATA):
            parts += body[9:]
            if int.from_bytes(body[7:9], "little") == 0:
                chunks.append(parts)
                parts = b""
    assert chunks == records
    assert kinds["data_first"] == 5 and kinds["data"] == 10
    assert kinds["startup"] > 200  # the burst of 200, then a repeat with every HeartBeat
    assert kinds["heartbeat"] >= 2 and kinds["shutdown"] == 20
