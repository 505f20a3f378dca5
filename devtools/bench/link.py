"""`scripts/bench link`: an ingress/egress pair on loopback against a raw Python UDP blast.

Per scenario: the raw baseline (blaster process → receiver process, no DDC), then a search for
the highest offered rate that the pair (`ddc ingress` UDP source → `ddc egress` UDP sink, real
processes, restarted for every trial) delivers with nothing lost. The ingress rate limiter is set
a little above the offered rate so it smooths the blaster's bursts without becoming the
bottleneck. A trial passes when the receiver counted every datagram sent and the egress counted
no lost packet.

Scenarios c and d are the same 60 KB datagrams over 1472-byte packets (no IP fragmentation on a
1500-byte MTU), without and with FEC 32+8; run together (`--scenario fec` or `all`), the table is
followed by the FEC on / off throughput ratio of this run. Scenarios e and f are a and b with
packet authentication on both sides (`--scenario auth` runs a, e, b, f: the auth on / off ratios
of this run). Scenarios g and h are a and b with the egress spool in memory
(`[egress.spool] dir = ""`) instead of on disk, the default every other scenario runs with
(`--scenario spool` runs a, g, b, h: the disk / memory ratios of this run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from ddc.protocol.auth_keys import new_key_line
from devtools.bench import pyspy
from devtools.bench.common import (
    Receiver,
    bench_pair,
    cpu_seconds,
    mib,
    peak_rss,
    print_table,
    raw_baseline,
    run_blaster,
    summarize,
)
from devtools.bench.common import Scenario as BenchScenario
from devtools.bench.search import RateSearch
from devtools.harness import Daemon, Pair, wait_progress


@dataclass(frozen=True)
class Scenario(BenchScenario):
    size: int  # bytes per datagram into the ingress
    envelope: str
    limiter_margin: float  # limiter rate = offered payload rate × this (headers, envelope)
    transport: dict[str, Any] = field(default_factory=dict)  # more [ingress.transport] keys
    auth: bool = False  # packet authentication on both sides (one key file)
    disk_spool: bool = True  # False: the egress spool in memory ([egress.spool] dir = "")


KEEP_UP = 0.95  # delivered/offered throughput a passing trial needs
# FEC 32+8, 60,000-byte datagrams: 42 data packets of at most 1,448 payload bytes (60,378 bytes
# with headers); between chunks the linger may close the group, so a chunk can close 2 groups:
# 16 parity packets of 1,472 bytes. (60,378 + 23,552) / 60,000 = 1.40 on the wire, +5 %.
FEC_MARGIN = 1.47

SCENARIOS = {
    "a": Scenario("a", "60 KB datagrams, raw envelope", 60_000, "raw", 1.05),
    "b": Scenario("b", "200-byte datagrams, records envelope", 200, "records", 1.3),
    "c": Scenario(
        "c",
        "60 KB datagrams, raw, 1472-byte packets, FEC off",
        60_000,
        "raw",
        1.05,
        {"max_packet_size": 1472},
    ),
    "d": Scenario(
        "d",
        "60 KB datagrams, raw, 1472-byte packets, FEC 32+8",
        60_000,
        "raw",
        FEC_MARGIN,
        {"max_packet_size": 1472, "fec_data": 32, "fec_parity": 8},
    ),
}
SCENARIOS["e"] = Scenario(
    "e", "60 KB datagrams, raw envelope, auth on", 60_000, "raw", 1.05, auth=True
)
SCENARIOS["f"] = Scenario(
    "f", "200-byte datagrams, records envelope, auth on", 200, "records", 1.3, auth=True
)
SCENARIOS["g"] = Scenario(
    "g", "60 KB datagrams, raw envelope, spool in memory", 60_000, "raw", 1.05, disk_spool=False
)
SCENARIOS["h"] = Scenario(
    "h",
    "200-byte datagrams, records envelope, spool in memory",
    200,
    "records",
    1.3,
    disk_spool=False,
)
GROUPS = {
    "all": ["a", "b", "c", "d", "e", "f", "g", "h"],
    "fec": ["c", "d"],
    "auth": ["a", "e", "b", "f"],
    "spool": ["a", "g", "b", "h"],
    "auth-60k": ["a", "e"],
    "spool-60k": ["a", "g"],
}
RATIOS = [
    ("d", "c", "FEC 32+8 on / off"),
    ("e", "a", "auth on / off, 60 KB"),
    ("f", "b", "auth on / off, 200 B"),
    ("a", "g", "spool on disk / in memory, 60 KB"),
    ("b", "h", "spool on disk / in memory, 200 B"),
]


def make_pair(workdir: Path, scenario: Scenario, rate_bits: float | None, sink_port: int) -> Pair:
    """`ddc ingress` (UDP source) + `ddc egress` (UDP sink to `sink_port`) for one trial, with
    large socket buffers and the default heartbeat timing."""
    transport: dict[str, Any] = {"envelope": scenario.envelope, "send_buffer": "16MiB"}
    transport.update(scenario.transport)
    if rate_bits:
        transport["rate"] = f"{rate_bits:.0f}"
    egress_transport: dict[str, Any] = {"receive_buffer": "64MiB", "envelope": scenario.envelope}
    if scenario.auth:
        keys = workdir / "bench.keys"
        if not keys.exists():
            keys.write_text(new_key_line(1) + "\n")
            keys.chmod(0o600)
        transport["auth_keys"] = egress_transport["auth_keys"] = str(keys)
    return bench_pair(
        workdir, "bench", "udp", transport, egress_transport, {"send_buffer": "16MiB"}, sink_port
    )


def pids(ingress: Daemon, egress: Daemon) -> dict[str, int]:
    assert ingress.process is not None and egress.process is not None
    return {"ingress": ingress.process.pid, "egress": egress.process.pid}


def cpu_pair(ingress: Daemon, egress: Daemon) -> tuple[float, float]:
    ingress_pid, egress_pid = pids(ingress, egress).values()
    return cpu_seconds(ingress_pid), cpu_seconds(egress_pid)


def wait_drained(ingress: Daemon, egress: Daemon, timeout: float, quiet: float = 2.0) -> None:
    """Until the egress has delivered every record the ingress took in, or nothing moved for
    `quiet` seconds."""
    wait_progress(
        lambda: (
            ingress.metric("ddc_ingress_records_total"),
            egress.metric("ddc_egress_records_delivered_total"),
        ),
        lambda counts: counts[1] >= counts[0],
        timeout,
        quiet,
    )


def measure(ingress: Daemon, egress: Daemon, cpu_start: tuple[float, float]) -> dict[str, Any]:
    assert ingress.process is not None and egress.process is not None
    egress_metrics, ingress_metrics = egress.metrics(), ingress.metrics()
    ingress_cpu, egress_cpu = cpu_pair(ingress, egress)
    return {
        "egress_lost": int(egress_metrics.get("ddc_egress_packets_lost_total", 0)),
        "buffer_full": int(ingress_metrics.get("ddc_ingress_buffer_full_total", 0)),
        "ingress_records": int(ingress_metrics.get("ddc_ingress_records_total", 0)),
        "ingress_rss": peak_rss(ingress.process.pid),
        "egress_rss": peak_rss(egress.process.pid),
        "ingress_cpu": ingress_cpu - cpu_start[0],
        "egress_cpu": egress_cpu - cpu_start[1],
    }


def trial(
    scenario: Scenario,
    rate: float,
    duration: float,
    workdir: Path,
    limiter: bool = True,
    profile: bool = False,
) -> dict[str, Any]:
    """Offer `rate` bytes/s of datagrams to a fresh pair for `duration` s; what got through
    (`profile`: with py-spy profiles of both daemons over the middle of the blast)."""
    # every trial starts with no dirty pages: the egress spool writes each record to disk, and
    # a trial that begins while the page cache still writes back its predecessors' gigabytes
    # is throttled by the kernel in write() (what made a scenario's result depend on the
    # scenarios run before it)
    os.sync()
    receiver = Receiver(idle=60.0, timeout=duration + 120).start()
    limit = rate * 8 * scenario.limiter_margin if limiter else None
    pair = make_pair(workdir, scenario, limit, receiver.port)
    # the harness gives an egress a disk spool beside its log unless DDC_HARNESS_SPOOL says
    # otherwise ("" = in memory)
    spool = {} if scenario.disk_spool else {"DDC_HARNESS_SPOOL": ""}
    try:
        with mock.patch.dict(os.environ, spool):
            pair.start()
        assert pair.ingress is not None and pair.egress is not None
        cpu_start = cpu_pair(pair.ingress, pair.egress)
        profiles: dict[str, pyspy.Profile] = {}  # both daemons, half the blast from 1/4 in
        spy = profile and pyspy.record_later(
            pids(pair.ingress, pair.egress), duration / 4, duration / 2, profiles
        )
        sent = run_blaster(
            ("127.0.0.1", pair.source_port), scenario.size, duration=duration, rate=rate
        )
        wait_drained(pair.ingress, pair.egress, timeout=duration + 60)
        time.sleep(0.2)  # the last datagrams from the egress's sink to the receiver
        received = receiver.stop()
        measured = measure(pair.ingress, pair.egress, cpu_start)
        if spy:
            spy.join()
            measured["profiles"] = profiles
    finally:
        pair.stop()
        if receiver.process is not None and receiver.process.poll() is None:
            receiver.stop()
    result = summarize(sent, received, scenario.size)
    result.update(measured)
    result["source_drops"] = sent["sent"] - measured["ingress_records"]
    # zero loss, and delivered as fast as offered: a pair that merely queues a short trial in
    # its socket buffers and trickles it out later does not pass
    result["kept_up"] = result["mb_per_s"] >= KEEP_UP * result["offered_mb_per_s"]
    result["passed"] = result["lost"] == 0 and measured["egress_lost"] == 0 and result["kept_up"]
    span = max(received["last"] - received["first"], 1e-6)
    result["ingress_cpu_pct"] = 100 * measured["ingress_cpu"] / span
    result["egress_cpu_pct"] = 100 * measured["egress_cpu"] / span
    return result


def _progress(scenario: Scenario, result: dict[str, Any]) -> None:
    print(
        f"  [{scenario.key}] offered {result['offered_rate'] / 1e6:8.1f} MB/s → delivered "
        f"{result['mb_per_s']:8.1f} MB/s {result['records_per_s']:10,.0f} rec/s, lost {result['lost']} "
        f"(at the ingress socket {result['source_drops']}, egress lost packets "
        f"{result['egress_lost']}), CPU ingress {result['ingress_cpu_pct']:.0f}% "
        f"egress {result['egress_cpu_pct']:.0f}%, load {result['load']:.1f} → "
        f"{'PASS' if result['passed'] else 'loss' if result['lost'] or result['egress_lost'] else 'fell behind'}",
        file=sys.stderr,
        flush=True,
    )


def run_searches(
    scenarios: list[Scenario],
    duration: float,
    steps: int,
    workdir: Path,
    rate: float | None = None,
    limiter: bool = True,
    profile: bool = False,
) -> list[list[Any]]:
    """The raw baseline of each scenario, then their rate searches in lockstep (trial i of each
    scenario one after the other: a same-run ratio compares trials made under the same load);
    `rate` (bytes/s): one trial each at that rate instead. Two table rows per scenario."""
    raws: dict[str, dict[str, Any]] = {}
    searches: dict[str, RateSearch] = {}
    for scenario in scenarios:
        print(f"scenario {scenario.key}: {scenario.title}", file=sys.stderr, flush=True)
        raw = raws[scenario.key] = raw_baseline(scenario.size, duration)
        print(
            f"  [{scenario.key}] raw UDP blast: {raw['mb_per_s']:.1f} MB/s "
            f"{raw['records_per_s']:,.0f} rec/s, loss {raw['loss_ratio']:.2%}",
            file=sys.stderr,
            flush=True,
        )
        high = rate or raw["mb_per_s"] * 1e6
        searches[scenario.key] = RateSearch(high, 1 if rate else steps)
    trials: dict[str, list[dict[str, Any]]] = {scenario.key: [] for scenario in scenarios}
    while any(search.rate is not None for search in searches.values()):
        for scenario in scenarios:
            search = searches[scenario.key]
            if search.rate is None:
                continue
            result = trial(scenario, search.rate, duration, workdir, limiter, profile)
            result["offered_rate"] = search.rate
            result["load"] = os.getloadavg()[0]
            trials[scenario.key].append(result)
            _progress(scenario, result)
            if "profiles" in result:
                print(pyspy.report(result["profiles"]), file=sys.stderr, flush=True)
            search.record(result["passed"], result["mb_per_s"] * 1e6)
    rows: list[list[Any]] = []
    for scenario in scenarios:
        rows += _rows(scenario, raws[scenario.key], trials[scenario.key])
    return rows


def _rows(scenario: Scenario, raw: dict[str, Any], trials: list[dict[str, Any]]) -> list[list[Any]]:
    passing = [t for t in trials if t["passed"]]
    best = (
        max(passing, key=lambda t: t["mb_per_s"])
        if passing
        else max(trials, key=lambda t: t["mb_per_s"])
    )
    label = "DDC pair, zero loss" if passing else "DDC pair (NO zero-loss rate found)"
    return [
        [scenario.key, "raw Python UDP", raw["mb_per_s"], raw["records_per_s"]]
        + [f"{raw['loss_ratio']:.2%}", "", "", "", "", 1.0],
        [
            scenario.key,
            label,
            best["mb_per_s"],
            best["records_per_s"],
            f"{best['loss_ratio']:.2%}",
            mib(best["ingress_rss"]),
            mib(best["egress_rss"]),
            best["ingress_cpu_pct"],
            best["egress_cpu_pct"],
            best["mb_per_s"] / raw["mb_per_s"] if raw["mb_per_s"] else 0.0,
        ],
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench link", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        choices=[*SCENARIOS, *GROUPS],
        default="all",
        help="fec: c and d; auth: a, e, b, f; spool: a, g, b, h; auth-60k: a, e; spool-60k: a, g",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per trial (default 5, --quick 1.5)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="trials per search (default 8, --quick 2)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="short trials, coarse search: a smoke run"
    )
    parser.add_argument(
        "--rate", type=float, help="one trial at this offered MB/s instead of a search"
    )
    parser.add_argument(
        "--no-limiter", action="store_true", help="no ingress rate limit (to profile the pair)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy both daemons in every trial and print where their CPU went",
    )
    args = parser.parse_args(argv)
    duration = args.duration or (1.5 if args.quick else 5.0)
    steps = args.steps or (2 if args.quick else 8)
    keys = GROUPS.get(args.scenario, [args.scenario])
    rows: list[list[Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="ddc-bench-link-"))
    load_before = os.getloadavg()
    try:
        rate = args.rate * 1e6 if args.rate else None
        rows += run_searches(
            [SCENARIOS[key] for key in keys],
            duration,
            steps,
            workdir,
            rate,
            not args.no_limiter,
            args.profile,
        )
    except BaseException:
        print(f"bench failed; configs and the pair's logs are kept in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(
        [
            "scen",
            "what",
            "MB/s",
            "records/s",
            "loss",
            "ingress RSS MiB",
            "egress RSS MiB",
            "ingress CPU%",
            "egress CPU%",
            "ratio to raw",
        ],
        rows,
    )
    load_after = os.getloadavg()
    print(
        f"\n(trials of {duration:g} s, searches in lockstep; CPU% = process CPU time over the "
        f"delivery span; {os.cpu_count()} cores; load average 1/5/15 min before "
        f"{'/'.join(f'{x:.1f}' for x in load_before)}, after "
        f"{'/'.join(f'{x:.1f}' for x in load_after)})"
    )
    best = {row[0]: row[2] for row in rows if row[1] != "raw Python UDP"}
    # CPU seconds of both daemons per delivered MB: what a ratio means on a busy machine
    cpu = {row[0]: (row[7] + row[8]) / 100 / row[2] for row in rows if row[7] != "" and row[2]}
    for on, off, what in RATIOS:
        if best.get(off) and on in best:
            print(
                f"{what} (scenario {on} / {off}, same run): {best[on] / best[off]:.2f}x "
                f"({best[on]:.1f} / {best[off]:.1f} MB/s); CPU per MB "
                f"{cpu[on] * 1000:.1f} / {cpu[off] * 1000:.1f} ms = {cpu[on] / cpu[off]:.2f}x"
            )
    return 0
