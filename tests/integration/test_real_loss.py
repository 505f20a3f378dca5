"""FEC against real kernel loss: a one-way veth link between two network namespaces, 2 % of its
IP packets dropped at random on the receiving side (tests/integration/netns.py).

UDP source -> ingress (namespace A) -> veth, MTU 1500, 1472-byte datagrams (one IP packet each)
-> egress (namespace B) -> file sink. 50,000 records of 100 B..8 KiB in the records envelope.
With FEC 32+8 every record arrives; without FEC records are lost and the egress's lost-packet
count equals the kernel's drop counter exactly.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from devtools.harness import DDC, Process, wait_progress, wait_until, write_toml
from devtools.harness.process import child_env
from tests.integration import netns
from tests.integration.streams import ID, read_length_prefixed, record_ok

pytestmark = [
    pytest.mark.real_loss,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]

COUNT = 50_000
LOSS = 0.02
RECORDS_PER_SECOND = 5000  # at most ~20 MB/s
# records sent but not yet read by the ingress: the sender waits beyond this, so the ingress's
# UDP source socket (32 MiB) never overflows however loaded the machine is
IN_FLIGHT = 1000
DATA_TYPES = ("data_first", "data")
SENDER = """
import random, re, socket, sys, time, urllib.request
from tests.integration.streams import make_record
port, count, seed, rate, in_flight = (int(arg) for arg in sys.argv[1:6])
metrics_url = sys.argv[6]
def read_by_ingress():
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return int(float(re.search(r"^ddc_ingress_records_total (\\S+)$", text, re.M).group(1)))
rng = random.Random(seed)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
read = 0
for i in range(count):
    while i - read >= in_flight:
        read = read_by_ingress()
        if i - read >= in_flight:
            time.sleep(0.02)
    sock.sendto(make_record(i, rng.randint(100, 8192)), ("127.0.0.1", port))
    ahead = (i + 1) / rate - (time.monotonic() - start)
    if ahead > 0.002:
        time.sleep(ahead)
"""


def sizes(seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(100, 8192) for _ in range(COUNT)]


def packets(metrics: dict[str, float], name: str, kinds=DATA_TYPES) -> float:
    return sum(metrics.get(f'{name}{{type="{kind}"}}', 0.0) for kind in kinds)


@pytest.fixture(scope="module")
def diode():
    link = netns.VethDiode(LOSS)
    try:
        yield link.create()
    finally:
        link.remove()


def run_pair(diode: netns.VethDiode, tmp_path, fec: dict, seed: int) -> dict:
    """Sends COUNT records through the link; the counts of both sides and the kernel's."""
    diode.zero()
    out = tmp_path / "out.bin"
    egress_config = write_toml(
        tmp_path / "egress.toml",
        {
            "egress": {"name": "real", "http_listen": f"{diode.mgmt_ns_b}:9102"},
            "egress.transport": {
                "listen": f"{diode.addr_b}:7001",
                "envelope": "records",
                "receive_buffer": "32MiB",
                "heartbeat_timeout": 5.0,
            },
            "egress.sink": {"type": "file", "path": str(out)},
        },
    )
    ingress_config = write_toml(
        tmp_path / "ingress.toml",
        {
            "ingress": {"name": "real", "http_listen": f"{diode.mgmt_ns_a}:9101"},
            "ingress.source": {"type": "udp", "listen": "127.0.0.1:7000"},
            "ingress.transport": {
                "destination": f"{diode.addr_b}:7001",
                "bind": f"{diode.addr_a}:7002",
                "max_packet_size": 1472,
                "envelope": "records",
                "rate": "200Mbit",
                "heartbeat_interval": 0.2,
                **fec,
            },
        },
    )
    egress = Process(
        "egress",
        diode.exec_argv(diode.b, [*DDC, "egress", "-c", str(egress_config)]),
        tmp_path,
        http_port=9102,
    )
    egress.host = diode.mgmt_ns_b
    ingress = Process(
        "ingress",
        diode.exec_argv(diode.a, [*DDC, "ingress", "-c", str(ingress_config)]),
        tmp_path,
        http_port=9101,
    )
    ingress.host = diode.mgmt_ns_a
    try:
        egress.start(20)
        ingress.start(20)
        wait_until(lambda: egress.health()["link_up"], 10, message="link up")
        started = time.monotonic()
        sender = diode.exec_argv(diode.a, [sys.executable, "-c", SENDER])
        sender += ["7000", str(COUNT), str(seed), str(RECORDS_PER_SECOND), str(IN_FLIGHT)]
        sender.append(ingress.url("/metrics"))
        subprocess.run(sender, env=child_env(), check=True, timeout=120)
        wait_until(
            lambda: ingress.metrics()["ddc_ingress_records_total"] == COUNT,
            30,
            message=lambda: f"the ingress to read every record: {ingress.metrics()}",
        )
        wait_until(
            lambda: (
                ingress.health()["queued_chunk_bytes"] == 0
                and ingress.health()["queued_records"] == 0
            ),
            30,
            message="the ingress to send everything",
        )
        sent = ingress.metrics()
        assert sent["ddc_ingress_source_kernel_drops_total"] == 0

        def accounted() -> bool:
            metrics = egress.metrics()
            got = packets(metrics, "ddc_egress_packets_received_total")
            return got + metrics["ddc_egress_packets_lost_total"] + metrics.get(
                "ddc_egress_fec_recovered_packets_total", 0
            ) == packets(sent, "ddc_ingress_packets_sent_total")

        wait_until(
            accounted, 30, message=lambda: f"every data packet accounted: {egress.metrics()}"
        )
        records = wait_progress(
            lambda: len(read_length_prefixed(out)), lambda n: n >= COUNT, 30, quiet=2.0
        )
        return {
            "seconds": time.monotonic() - started,
            # read again: the parity of the last FEC group leaves after the linger, which can
            # end after the queues above were seen empty
            "ingress": ingress.metrics(),
            "egress": egress.metrics(),
            "health": egress.health(),
            "kernel_dropped": diode.dropped(),
            "records": read_length_prefixed(out) if records else [],
        }
    finally:
        ingress.stop()
        egress.stop()


PARITY_SENT = 'ddc_ingress_packets_sent_total{type="parity"}'


def report(name: str, result: dict) -> None:
    e, i = result["egress"], result["ingress"]
    print(
        f"\n{name}: {len(result['records'])}/{COUNT} records in {result['seconds']:.1f} s; "
        f"sent {packets(i, 'ddc_ingress_packets_sent_total'):.0f} data + "
        f"{i.get(PARITY_SENT, 0):.0f} parity; kernel "
        f"dropped {result['kernel_dropped']}; egress lost {e['ddc_egress_packets_lost_total']:.0f}, "
        f"recovered {e['ddc_egress_fec_recovered_packets_total']:.0f}, unrecoverable groups "
        f"{e['ddc_egress_fec_unrecoverable_groups_total']:.0f}, socket drops "
        f"{e.get('ddc_egress_kernel_drops_total', 0):.0f}, resyncs "
        f"{e.get('ddc_egress_resyncs_total', 0):.0f}, late {e.get('ddc_egress_packets_late_total', 0):.0f}"
        f", aborted { ({k: v for k, v in e.items() if 'aborted' in k}) }; health margin "
        f"{result['health']['fec_repair_margin']}, loss ratio {result['health']['packet_loss_ratio']}"
    )


def test_fec_32_8_delivers_all_50000_records_through_2_percent_kernel_loss(diode, tmp_path):
    seed = 11
    result = run_pair(diode, tmp_path, {"fec_data": 32, "fec_parity": 8}, seed)
    report("FEC 32+8", result)
    e, i = result["egress"], result["ingress"]
    expected = sizes(seed)
    records = result["records"]
    assert [ID.unpack_from(r)[0] for r in records] == list(range(COUNT))
    assert all(record_ok(r, expected[ID.unpack_from(r)[0]]) for r in records)
    assert e["ddc_egress_packets_lost_total"] == 0
    assert e["ddc_egress_fec_unrecoverable_groups_total"] == 0
    assert e.get("ddc_egress_kernel_drops_total", 0) == 0
    # exact accounting: every data and parity packet sent arrived or the kernel dropped it
    sent = packets(i, "ddc_ingress_packets_sent_total", (*DATA_TYPES, "parity"))
    received = packets(e, "ddc_egress_packets_received_total", (*DATA_TYPES, "parity"))
    assert received + result["kernel_dropped"] == sent
    assert result["kernel_dropped"] > 0.01 * sent
    data_lost = packets(i, "ddc_ingress_packets_sent_total") - packets(
        e, "ddc_egress_packets_received_total"
    )
    assert e["ddc_egress_fec_recovered_packets_total"] == data_lost > 0


def test_without_fec_records_are_lost_and_lost_packets_equal_the_kernel_drops(diode, tmp_path):
    result = run_pair(diode, tmp_path, {}, seed=12)
    report("no FEC", result)
    e, i = result["egress"], result["ingress"]
    assert e.get("ddc_egress_kernel_drops_total", 0) == 0  # else the socket lost some too
    assert i.get(PARITY_SENT, 0) == 0
    assert e["ddc_egress_packets_lost_total"] == result["kernel_dropped"] > 0
    assert e["ddc_egress_fec_recovered_packets_total"] == 0
    assert len(result["records"]) < COUNT
