"""The pair through `ddc diode-sim`: every packet the simulator drops is counted lost, exactly."""

from __future__ import annotations

import socket

import pytest

from dedup_service.embedded import free_port
from devtools.harness import DDC, Process, wait_until
from tests.integration.streams import (
    ID,
    Collector,
    make_record,
    record_ok,
    send_sized_records,
    send_tcp_records,
    varied_sizes,
)

DATA_TYPES = ("data_first", "data")


def data_packets(metrics: dict[str, float], name: str) -> float:
    """DataFirst + Data packets of a counter labelled by packet type."""
    return sum(metrics.get(f'{name}{{type="{kind}"}}', 0.0) for kind in DATA_TYPES)


@pytest.fixture
def diode(tmp_path):
    started: list[Process] = []

    def start(listen: int, forward: int, *options: str) -> Process:
        http = free_port()
        argv = [
            *DDC,
            "diode-sim",
            "--listen",
            f"127.0.0.1:{listen}",
            "--forward",
            f"127.0.0.1:{forward}",
            "--http",
            f"127.0.0.1:{http}",
            *options,
        ]
        sim = Process(f"sim-{listen}", argv, tmp_path, http_port=http)
        started.append(sim)
        return sim.start(15)

    yield start
    for sim in started:
        sim.stop()


def behind_diode(pair, diode, *options: str) -> tuple[Collector, Process]:
    """The pair's ingress sending through a diode simulator (started with `options`) to its
    egress, and a started TCP collector at its sink."""
    sim_port = free_port(socket.SOCK_DGRAM)
    pair.destination_port = sim_port
    collector = Collector("tcp", pair.sink_port)
    collector.start()
    return collector, diode(sim_port, pair.link_port, *options)


def test_lost_counter_equals_packets_the_simulator_dropped(pairs, diode):
    pair = pairs(source="tcp", sink="tcp", transport={"max_packet_size": 1472})
    collector, sim = behind_diode(pair, diode, "--loss", "0.01", "--seed", "42")
    egress = pair.start_egress()
    ingress = pair.start_ingress()
    # records of 1..5 packets (max_packet_size 1472): loss hits single- and multi-packet chunks
    count = 3000
    sizes = varied_sizes(count)
    send_sized_records(pair.source_port, sizes, ingress)
    sent = data_packets(ingress.metrics(), "ddc_ingress_packets_sent_total")

    def accounted() -> dict[str, float]:
        metrics = egress.metrics()
        return {
            "sent": sent,
            "received": data_packets(metrics, "ddc_egress_packets_received_total"),
            "lost": metrics["ddc_egress_packets_lost_total"],
            "delivered": metrics["ddc_egress_chunks_delivered_total"],
            "collected": len(collector.records),
        }

    # every data packet the ingress sent is received or counted lost (loss at the stream's tail
    # too, once a HeartBeat shows it), and every chunk delivered reached the collector
    wait_until(
        lambda: (
            (state := accounted())["received"] + state["lost"] == sent
            and state["delivered"] == state["collected"]
        ),
        10,
        message=lambda: f"every data packet accounted for: {accounted()}",
    )
    collector.stop()
    counters = sim.health()
    by_type = counters["dropped_by_type"]
    data_drops = sum(by_type.get(kind, 0) for kind in DATA_TYPES)
    state = accounted()
    assert counters["receive_buffer_drops"] == 0 and counters["dropped"] == counters["dropped_loss"]
    assert data_drops > 10
    assert state["lost"] == data_drops
    assert state["received"] + data_drops == sent
    got = collector.records
    assert all(record_ok(r, sizes[ID.unpack_from(r)[0]]) for r in got)  # nothing partial or corrupt
    indexes = [ID.unpack_from(r)[0] for r in got]
    assert indexes == sorted(set(indexes))
    # a lost packet costs the one chunk it belonged to, and nothing else
    assert 0 < count - len(got) <= data_drops
    assert state["delivered"] == len(got)


def test_a_restarted_relay_sending_from_a_new_port_gets_the_link_back(pairs, diode):
    """kill -9 of the diode relay: its successor forwards from another port and the ingress
    behind it says no StartUp again; the egress follows it after heartbeat_timeout (1 s here)
    and two HeartBeats instead of refusing the link for good."""
    pair = pairs(source="tcp", sink="tcp")
    collector, sim = behind_diode(pair, diode)
    egress = pair.start_egress()
    pair.start_ingress()
    send_tcp_records(pair.source_port, (make_record(i, 200) for i in range(100)))
    wait_until(lambda: len(collector.records) == 100, 20, message="the first 100 records")
    old_sender = egress.health()["sender"]
    sim.kill()
    sim.start(15)  # the same listen port, a new kernel-chosen source port
    wait_until(
        lambda: (h := egress.health())["link_up"] is True and h["sender"] != old_sender,
        15,
        message="the relay's new address taken over",
    )
    # until then its packets were refused and counted as foreign
    assert egress.metric("ddc_egress_foreign_packets_total") > 0
    send_tcp_records(pair.source_port, (make_record(i, 200) for i in range(100, 200)))
    wait_until(
        lambda: len(collector.records) == 200,
        20,
        message=lambda: (
            f"the next 100 records ({len(collector.records)} so far): {egress.health()}"
        ),
    )
    collector.stop()
    indexes = [ID.unpack_from(r)[0] for r in collector.records]
    assert indexes == list(range(200))
    assert "pinned, replacing" in (pair.tmp / f"{pair.name}-egress.log").read_text()
