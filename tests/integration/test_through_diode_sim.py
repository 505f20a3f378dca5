"""The pair through `ddc diode-sim`: every packet the simulator drops is counted lost, exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from dedup_service.embedded import free_port
from devtools.harness import Pair, wait_until
from tests.integration.streams import ID, Collector, make_record, record_ok, send_tcp_records


def sim_counters(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def diode(tmp_path):
    processes = []

    def start(listen: int, forward: int, *options: str) -> int:
        http = free_port()
        log = open(tmp_path / f"sim-{listen}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "ddc.cli", "diode-sim", "--listen", f"127.0.0.1:{listen}",
             "--forward", f"127.0.0.1:{forward}", "--http", f"127.0.0.1:{http}", *options],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(process)
        wait_until(lambda: _up(http), 15, message="diode-sim HTTP")
        return http

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def _up(port: int) -> bool:
    try:
        sim_counters(port)
        return True
    except OSError:
        return False


def test_lost_counter_equals_packets_the_simulator_dropped(pairs_tmp):
    pair, diode_start = pairs_tmp
    sim_port = free_port(socket_kind_udp())
    pair.options["destination_port"] = sim_port
    collector = Collector("tcp", pair.sink_port)
    collector.start()
    http = diode_start(sim_port, pair.link_port, "--loss", "0.01", "--seed", "42")
    pair.start_egress()
    pair.start_ingress()
    # records of 1..5 packets (max_packet_size 1472): loss hits single- and multi-packet chunks
    count = 3000
    sizes = [100 + (i * 1913) % 7000 for i in range(count)]
    send_tcp_records(
        pair.source_port, (make_record(i, s) for i, s in enumerate(sizes)), pause_every=50
    )
    wait_until(
        lambda: pair.ingress.metrics()["ddc_ingress_chunks_sent_total"] == count, 60, message="sent"
    )
    time.sleep(1.0)  # several HeartBeats: loss at the tail of the stream is detected too
    counters = sim_counters(http)
    by_type = counters["dropped_by_type"]
    data_drops = by_type.get("data_first", 0) + by_type.get("data", 0)
    lost = pair.egress.metrics()["ddc_egress_packets_lost_total"]
    collector.stop()
    assert counters["receive_buffer_drops"] == 0 and counters["dropped"] == counters["dropped_loss"]
    assert data_drops > 10
    assert lost == data_drops
    got = collector.records
    assert all(record_ok(r, sizes[ID.unpack_from(r)[0]]) for r in got)  # nothing partial or corrupt
    indexes = [ID.unpack_from(r)[0] for r in got]
    assert indexes == sorted(set(indexes))
    # a lost packet costs the one chunk it belonged to, and nothing else
    assert 0 < count - len(got) <= data_drops
    assert pair.egress.metrics()["ddc_egress_chunks_delivered_total"] == len(got)


def socket_kind_udp() -> int:
    import socket

    return socket.SOCK_DGRAM


@pytest.fixture
def pairs_tmp(tmp_path, diode):
    pair = Pair(tmp_path, name="sim", source="tcp", sink="tcp", transport={"max_packet_size": 1472})
    yield pair, diode
    pair.stop()
