"""`scripts/bench redundant`: the redundant stack's highest exactly-once rate, against one Kafka pair.

The stack is the demo's (devtools/demo.py start_stack): compose/config/redundant/ on loopback,
two ingress → `ddc diode-sim` (0 loss) → egress links, both egresses' dedup sinks into the dedup
service (embedded Redis), which forwards first copies to the target topic on an embedded Tansu
broker. A mirroring source process sends every 200-byte JSON record (a unique "id") to both
ingresses at the offered rate for --duration seconds; a reader counts each id at the target.

A trial passes when every record sent arrived exactly once and the last of them within
LAG_S + 5 % of --duration after the sender finished (the stack kept up: its buffers stayed
bounded instead of queueing the trial). The search (devtools.bench.search.rate_search) finds
the highest passing rate. The same search runs on one pair (`ddc ingress` → `ddc egress` with a
Kafka sink, the ingress transport of ingress-a.toml, no diode simulator) on the same broker in
the same run: the ratio is redundant unique records/s over that pair's records/s. The pair's
Kafka sink uses the same client as the dedup service's (--dedup-client). Peak RSS and
CPU % (CPU time over the trial's wall time) per process are those of the best passing trial;
--profile adds py-spy's top functions of each process during one more trial at that rate.
"Waited" is the time a process's threads were runnable but had no CPU (Linux schedstat), over
the trial's wall time: each process can be far from 100 % CPU and the machine still saturated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddc.netio import set_send_buffer
from dedup_service.embedded import EmbeddedRedis, ServerProcess
from devtools.bench import pyspy, redis_profile
from devtools.bench.common import (
    bench_pair,
    cpu_seconds,
    mib,
    peak_rss,
    print_table,
    runqueue_seconds,
)
from devtools.bench.search import rate_search
from devtools.demo import CONFIGS, OutputCounter, start_stack
from devtools.embedded_kafka import create_topics
from devtools.harness import Stack, child_env, python_argv, wait_progress

SIZE = 200
LAG_S = 2.0
DRAIN_S = 300.0  # after a failed trial, until nothing more arrives for 5 s
WARM_UP = (500.0, 3.0)  # records/s, seconds: a trial before the search, not counted


# --- the mirroring source (a process of its own) -------------------------------------------


def record_maker(prefix: str, size: int = SIZE) -> Callable[[int], bytes]:
    head = '{"id":"' + prefix + '-%09d","pad":"'
    pad = "x" * (size - len(head % 0) - 2)
    template = (head + pad + '"}').encode()
    return lambda index: template % index


def send(targets: list[tuple[str, int]], rate: float, duration: float, prefix: str) -> int:
    """Every record to each target, `rate` records/s in 1 ms batches; prints what was sent.

    One connected socket per target: send() on it cost 9.3 us of CPU per record to two targets
    against sendto()'s 12.5 us (the sender shares the machine with the stack it measures)."""
    sends = []
    for target in targets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        set_send_buffer(sock, 8 * 1024**2)
        sock.connect(target)
        sends.append(sock.send)
    make = record_maker(prefix)
    batch = max(1, int(rate / 1000))
    sent = errors = 0
    start = time.monotonic()
    while time.monotonic() - start < duration:
        for index in range(sent, sent + batch):
            record = make(index)
            for send_one in sends:
                try:
                    send_one(record)
                except OSError:
                    errors += 1
        sent += batch
        ahead = start + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "errors": errors, "elapsed": elapsed}), flush=True)
    return 0


# --- one trial ------------------------------------------------------------------------------


def pids_of(servers: dict[str, ServerProcess]) -> dict[str, int]:
    return {
        name: server.process.pid
        for name, server in servers.items()
        if server.process is not None and server.process.poll() is None
    }


def trial(
    servers: dict[str, ServerProcess],
    counter: OutputCounter,
    targets: list[tuple[str, int]],
    rate: float,
    duration: float,
    prefix: str,
    profile: bool = False,
) -> dict[str, Any]:
    """Offer `rate` records/s for `duration` s; what arrived at the target topic."""
    load_before = os.getloadavg()[0]
    pids = pids_of(servers)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wait0 = {name: runqueue_seconds(pid) for name, pid in pids.items()}
    profiles: dict[str, pyspy.Profile] = {}
    spy = threading.Thread(
        target=lambda: profiles.update(pyspy.record(pids, min(10.0, duration / 2))), daemon=True
    )
    argv = python_argv("devtools.bench.redundant", "send", "--rate", str(rate))
    argv += ["--duration", str(duration), "--prefix", prefix]
    argv += [arg for host, port in targets for arg in ("--to", f"{host}:{port}")]
    started = time.monotonic()
    sender = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=child_env())
    if profile:
        spy.start()
    while sender.poll() is None:
        counter.poll()
        time.sleep(0.1)
    sent_at = time.monotonic()
    out, _ = sender.communicate()
    sent = json.loads(out.strip().splitlines()[-1])["sent"]
    limit = LAG_S + 0.05 * duration
    done_at, last, last_change = None, -1, time.monotonic()
    while time.monotonic() - last_change < 5.0 and time.monotonic() - sent_at < limit + 60:
        counter.poll()
        got = counter.unique(prefix)
        if got != last:
            last, last_change = got, time.monotonic()
        if got >= sent:
            done_at = time.monotonic()
            time.sleep(0.5)  # a late duplicate would still count
            counter.poll()
            break
        time.sleep(0.2)
    wall = (done_at or time.monotonic()) - started
    mine = {key: n for key, n in counter.ids.items() if key.startswith(prefix + "-")}
    lag = None if done_at is None else done_at - sent_at
    if profile:
        spy.join(60)
    result = {
        "rate": rate,
        "sent": sent,
        "unique": len(mine),
        "duplicates": sum(n - 1 for n in mine.values()),
        "lag": lag,
        "rss": {name: peak_rss(pid) for name, pid in pids_of(servers).items()},
        "cpu": {
            name: 100 * (cpu_seconds(pid) - cpu0.get(name, 0.0)) / wall
            for name, pid in pids_of(servers).items()
        },
        "wait": {
            name: 100 * (runqueue_seconds(pid) - wait0.get(name, 0.0)) / wall
            for name, pid in pids_of(servers).items()
        },
        "profiles": profiles,
        "wall": wall,
    }
    result["passed"] = (
        result["unique"] == sent and result["duplicates"] == 0 and lag is not None and lag <= limit
    )
    result["achieved"] = len(mine) / max(time.monotonic() - started, 1e-6)
    if not result["passed"]:  # the next trial starts on an empty stack; late is not lost
        wait_progress(lambda: counter.poll(), lambda _: False, DRAIN_S, quiet=5.0, interval=0.5)
        mine = {key: n for key, n in counter.ids.items() if key.startswith(prefix + "-")}
        result["late_unique"] = len(mine)
        result["late_duplicates"] = sum(n - 1 for n in mine.values())
    verdict = "PASS" if result["passed"] else "fail"
    if "late_unique" in result:
        verdict += (
            f" (after draining: unique {result['late_unique']:,}, "
            f"duplicates {result['late_duplicates']})"
        )
    if sent < 0.95 * rate * duration:  # the sender shares the CPUs: it may not keep up
        verdict += f" (the sender offered only {sent / duration:,.0f}/s)"
    print(
        f"  {prefix}: offered {rate:,.0f}/s x {duration:g}s: sent {sent:,}, unique {result['unique']:,}, "
        f"duplicates {result['duplicates']}, lag {'-' if lag is None else f'{lag:.1f}s'} → {verdict}; "
        f"load {load_before:.1f} → {os.getloadavg()[0]:.1f}; the stack's processes ran "
        f"{sum(result['cpu'].values()):.0f} % CPU and waited for a CPU "
        f"{sum(result['wait'].values()):.0f} %",
        file=sys.stderr,
        flush=True,
    )
    print(f"    CPU: {cpu_per_record(result, wall)}", file=sys.stderr, flush=True)
    return result


def search(
    name: str,
    run: Callable[[float, str, bool], dict[str, Any]],
    high: float,
    steps: int,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    trials: list[dict[str, Any]] = []

    def attempt(rate: float) -> tuple[bool, float]:
        result = run(rate, f"{name}{len(trials)}", False)
        trials.append(result)
        return result["passed"], result["achieved"]

    rate_search(attempt, high, steps)
    passing = [t for t in trials if t["passed"]]
    return (max(passing, key=lambda t: t["rate"]) if passing else None), trials


# --- the two contenders ---------------------------------------------------------------------


def ingress_transport(work: Path) -> dict[str, Any]:
    """The [ingress.transport] of the redundant stack's ingress-a.toml, minus its destination,
    signing with the stack's key file (start_stack wrote it into `work`) when it authenticates."""
    with open(CONFIGS / "ingress-a.toml", "rb") as handle:
        transport = dict(tomllib.load(handle)["ingress"]["transport"])
    transport.pop("destination", None)
    if "auth_keys" in transport:
        transport["auth_keys"] = str(work / "link_auth_keys")
    return transport


def single_pair(args: argparse.Namespace, work: Path, bootstrap: str) -> dict[str, Any]:
    topic = "single-pair"
    create_topics(bootstrap, topic, partitions=1)
    transport = ingress_transport(work)
    keys = {"auth_keys": transport["auth_keys"]} if "auth_keys" in transport else {}
    pair = bench_pair(
        work,
        "single",
        "kafka",
        transport,
        {"receive_buffer": "64MiB", "envelope": "records", **keys},
        # the dedup service's client: both contenders end in the same Kafka producer
        {"bootstrap_servers": [bootstrap], "topic": topic, "client": args.dedup_client},
    )
    counter = OutputCounter(bootstrap, topic)
    try:
        pair.start()
        assert pair.ingress is not None and pair.egress is not None
        servers: dict[str, ServerProcess] = {"ingress": pair.ingress, "egress": pair.egress}
        targets = [("127.0.0.1", pair.source_port)]
        trial(servers, counter, targets, WARM_UP[0], WARM_UP[1], "warm")

        def run(rate: float, prefix: str, profile: bool) -> dict[str, Any]:
            return trial(servers, counter, targets, rate, args.duration, prefix, profile)

        best, trials = search("p", run, args.pair_high, args.steps)
    finally:
        counter.close()
        pair.stop()
    return {"best": best, "trials": trials}


def redundant(args: argparse.Namespace, work: Path, stack: Stack) -> dict[str, Any]:
    # the dedup service's Kafka sink client ([dedup.sink] client)
    client = {"DDC__SINK__CLIENT": json.dumps(args.dedup_client)}
    topology = start_stack(stack, work, 0.0, dedup_env=client)
    counter = OutputCounter(topology.bootstrap)
    targets = [("127.0.0.1", link.source_port) for link in topology.links]

    def run(rate: float, prefix: str, profile: bool) -> dict[str, Any]:
        stack.check()
        return trial(stack.servers, counter, targets, rate, args.duration, prefix, profile)

    try:
        # first records: the dedup service's producer connects, the reader's fetches start
        trial(stack.servers, counter, targets, WARM_UP[0], WARM_UP[1], "warm")
        best, trials = search("r", run, args.high, args.steps)
        profiled = None
        if args.profile:
            rate = best["rate"] if best else max(t["achieved"] for t in trials)
            redis_server = stack.servers["redis"]
            assert isinstance(redis_server, EmbeddedRedis)
            redis_profile.reset(redis_server)
            profiled = run(rate, "prof", True)
            profiled["redis"] = redis_profile.report(redis_server, profiled["unique"])
    finally:
        counter.close()
    return {"best": best, "trials": trials, "profiled": profiled, "bootstrap": topology.bootstrap}


# --- entry point ------------------------------------------------------------------------------


def resources(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {mib(result['rss'][name]):.0f} MiB {result['cpu'].get(name, 0.0):.0f}%"
        f" (waited {result['wait'].get(name, 0.0):.0f}%)"
        for name in sorted(result["rss"])
    )


def cpu_per_record(result: dict[str, Any], wall: float) -> str:
    """CPU time per record of each process and of all (from the CPU % over `wall`), and the
    rate the machine's cores could carry at that cost: a bound that moves less with the load
    other work puts on the machine than the searched rate does (at a low rate the daemons'
    fixed per-second work weighs on every record: read it as an upper bound)."""
    unique = max(result["unique"], 1)
    each = {name: 1e6 * pct / 100 * wall / unique for name, pct in result["cpu"].items()}
    total = sum(each.values())
    cores = os.cpu_count() or 1
    parts = ", ".join(f"{name} {us:.0f}" for name, us in sorted(each.items()))
    return (
        f"{total:.0f} us per record in all ({parts}): {cores} cores carry at most "
        f"{cores * 1e6 / max(total, 1e-9):,.0f} records/s at that cost (the sender not counted)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench redundant", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command")
    sender = sub.add_parser("send", help=argparse.SUPPRESS)
    sender.add_argument("--to", action="append", required=True)
    for option, kind in {"--rate": float, "--duration": float, "--prefix": str}.items():
        sender.add_argument(option, type=kind, required=True)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per trial")
    parser.add_argument("--steps", type=int, default=4, help="trials per search")
    parser.add_argument("--high", type=float, default=20000.0, help="first redundant rate")
    parser.add_argument("--pair-high", type=float, default=60000.0, help="first pair rate")
    parser.add_argument("--profile", action="store_true", help="py-spy each process at the best")
    parser.add_argument("--no-pair", action="store_true", help="skip the single-pair search")
    parser.add_argument(
        "--dedup-client",
        choices=("kafka-python", "librdkafka"),
        default="librdkafka",
        help="the Kafka client of the dedup service's sink and of the single pair's egress sink "
        "(compose's dedup.toml: librdkafka)",
    )
    args = parser.parse_args(argv)
    if args.command == "send":
        targets = [(host, int(port)) for host, _, port in (t.rpartition(":") for t in args.to)]
        return send(targets, args.rate, args.duration, args.prefix)
    work = Path(tempfile.mkdtemp(prefix="ddc-bench-redundant-"))
    stack = Stack()
    try:
        print("redundant stack (2 links, dedup service, Kafka target):", file=sys.stderr)
        red = redundant(args, work, stack)
        pair = None
        if not args.no_pair:
            print("single pair with a Kafka sink (same broker):", file=sys.stderr)
            pair = single_pair(args, work, red["bootstrap"])
    except BaseException:
        print(f"bench failed; logs kept in {work}", file=sys.stderr)
        raise
    finally:
        stack.stop()
    rows = []
    for label, outcome in (("redundant (unique)", red), ("single Kafka pair", pair)):
        if outcome is None:
            continue
        best = outcome["best"]
        rows.append([label, best["rate"] if best else "none passed", len(outcome["trials"])])
    print()
    print_table(["path", "records/s exactly once", "trials"], rows)
    if red["best"] and pair and pair["best"]:
        print(f"ratio redundant / single pair: {red['best']['rate'] / pair['best']['rate']:.2f}")
    for label, outcome in (("redundant", red), ("pair", pair)):
        if outcome and outcome["best"]:
            best = outcome["best"]
            print(f"{label}, peak RSS and CPU (runqueue wait): {resources(best)}")
            print(f"{label}, CPU at that rate: {cpu_per_record(best, best['wall'])}")
    if red.get("profiled"):
        print(f"\npy-spy at {red['profiled']['rate']:,.0f}/s:")
        print(pyspy.report(red["profiled"]["profiles"]))
        print(red["profiled"]["redis"])
    print(
        f"\n(trials of {args.duration:g} s; dedup sink client {args.dedup_client}; logs in {work})"
    )
    shutil.rmtree(work / "kafka", ignore_errors=True)
    return 0 if red["best"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
