"""FEC on a real pair through `ddc diode-sim --loss`: what the simulator drops, parity restores."""

from __future__ import annotations

import math
import socket

import pytest

from dedup_service.embedded import free_port
from devtools.harness import DDC, Process, wait_until
from tests.integration.streams import ID, Collector, record_ok, send_sized_records, varied_sizes

DATA_TYPES = ("data_first", "data")


def packets(metrics: dict[str, float], name: str, kinds=DATA_TYPES) -> float:
    return sum(metrics.get(f'{name}{{type="{kind}"}}', 0.0) for kind in kinds)


def run_through_sim(pairs, tmp_path, transport: dict, impairment: list[str], count: int):
    """`count` records of 1..5 packets through ingress -> diode-sim -> egress; the records
    collected and the counters of all three once the egress has accounted for every packet."""
    pair = pairs(source="tcp", sink="tcp", transport=transport)
    sim_port, sim_http = free_port(socket.SOCK_DGRAM), free_port()
    pair.destination_port = sim_port
    collector = Collector("tcp", pair.sink_port)
    collector.start()
    argv = [*DDC, "diode-sim", "--listen", f"127.0.0.1:{sim_port}"]
    argv += ["--forward", f"127.0.0.1:{pair.link_port}", "--http", f"127.0.0.1:{sim_http}"]
    sim = Process("sim", [*argv, *impairment], tmp_path, http_port=sim_http)
    sim.start(15)
    try:
        egress = pair.start_egress()
        ingress = pair.start_ingress()
        sizes = varied_sizes(count)
        send_sized_records(pair.source_port, sizes, ingress)

        def flushed() -> dict[str, float] | None:
            """The ingress's counters once the last FEC group's linger sent its parity."""
            metrics = ingress.metrics()
            fec = transport.get("fec_data")
            parity = metrics.get('ddc_ingress_packets_sent_total{type="parity"}', 0.0)
            if fec and parity < transport["fec_parity"] * math.ceil(
                packets(metrics, "ddc_ingress_packets_sent_total") / fec
            ):
                return None
            return metrics

        sent = wait_until(flushed, 10, message="the last group's parity")
        data_sent = packets(sent, "ddc_ingress_packets_sent_total")

        def accounted() -> bool:
            m = egress.metrics()
            got = packets(m, "ddc_egress_packets_received_total")
            return got + m["ddc_egress_packets_lost_total"] + m[
                "ddc_egress_fec_recovered_packets_total"
            ] == data_sent and m["ddc_egress_chunks_delivered_total"] == len(collector.records)

        wait_until(accounted, 20, message=lambda: f"every packet accounted: {egress.metrics()}")
        return collector.records, sizes, sent, egress.metrics(), egress.health(), sim.health()
    finally:
        collector.stop()
        sim.stop()


def test_fec_32_8_delivers_every_record_through_one_percent_random_loss(pairs, tmp_path):
    count = 5000
    transport = {"max_packet_size": 1472, "fec_data": 32, "fec_parity": 8}
    got, sizes, sent, metrics, health, dropped = run_through_sim(
        pairs, tmp_path, transport, ["--loss", "0.01", "--seed", "7"], count
    )
    parity_sent = sent['ddc_ingress_packets_sent_total{type="parity"}']
    data_sent = packets(sent, "ddc_ingress_packets_sent_total")
    assert len(got) == count
    assert [ID.unpack_from(r)[0] for r in got] == list(range(count))
    assert all(record_ok(r, sizes[ID.unpack_from(r)[0]]) for r in got)
    data_drops = sum(dropped["dropped_by_type"].get(kind, 0) for kind in DATA_TYPES)
    parity_drops = dropped["dropped_by_type"].get("parity", 0)
    assert data_drops > 20 and parity_drops > 0 and dropped["receive_buffer_drops"] == 0
    # parity: 8 per group of up to 32 data packets; a group closed by the linger is shorter
    assert parity_sent >= 8 * math.ceil(data_sent / 32) and parity_sent % 8 == 0
    assert metrics["ddc_egress_packets_lost_total"] == 0
    assert metrics["ddc_egress_fec_recovered_packets_total"] == data_drops
    assert metrics["ddc_egress_fec_unrecoverable_groups_total"] == 0
    assert packets(metrics, "ddc_egress_packets_received_total") + data_drops == data_sent
    received_parity = metrics['ddc_egress_packets_received_total{type="parity"}']
    assert received_parity + parity_drops == parity_sent
    assert health["fec"] == {"data": 32, "parity": 8, "interleave": 1}
    assert health["fec_recovered"] == data_drops and health["packets_lost"] == 0
    assert health["fec_unrecoverable_groups"] == 0
    print(
        f"\nFEC 32+8 through diode-sim --loss 0.01: {count} records, {data_sent:.0f} data + "
        f"{parity_sent:.0f} parity packets sent, {data_drops} data + {parity_drops} parity "
        f"dropped, {metrics['ddc_egress_fec_recovered_packets_total']:.0f} recovered, "
        f"lost {metrics['ddc_egress_packets_lost_total']:.0f}, margin "
        f"{health['fec_repair_margin']}, loss ratio {health['packet_loss_ratio']}"
    )


@pytest.mark.parametrize("interleave", [1, 4])
def test_interleaving_repairs_bursts_longer_than_the_parity(pairs, tmp_path, interleave):
    """Bursts of 12 consecutive lost packets against 8 parity packets per group: one group
    cannot repair them; four interleaved groups lose 3 each to a burst, so even two bursts in
    one block (160 packets; about 15 bursts in the run) are repaired. (Interleave 2 repairs a
    lone burst but not two in one 80-packet block, which this run makes likely.)"""
    count = 3000
    transport = {"max_packet_size": 1472, "fec_data": 32, "fec_parity": 8}
    transport["fec_interleave"] = interleave
    got, sizes, sent, metrics, health, dropped = run_through_sim(
        pairs, tmp_path, transport, ["--burst-loss", "0.001,12", "--seed", "5"], count
    )
    data_drops = sum(dropped["dropped_by_type"].get(kind, 0) for kind in DATA_TYPES)
    lost = metrics["ddc_egress_packets_lost_total"]
    unrecoverable = metrics["ddc_egress_fec_unrecoverable_groups_total"]
    recovered = metrics["ddc_egress_fec_recovered_packets_total"]
    print(
        f"\nburst-loss 0.001,12, FEC 32+8, interleave {interleave}: {dropped['dropped']} packets "
        f"dropped ({data_drops} data) in bursts; recovered {recovered:.0f}, lost {lost:.0f}, "
        f"unrecoverable groups {unrecoverable:.0f}, records {len(got)}/{count}"
    )
    assert dropped["dropped"] >= 12 * 5 and recovered + lost == data_drops
    assert health["fec"] == {"data": 32, "parity": 8, "interleave": interleave}
    if interleave == 1:
        assert unrecoverable > 0 and lost > 0 and len(got) < count
    else:
        assert unrecoverable == 0 and lost == 0 and len(got) == count
