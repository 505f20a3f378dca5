"""`scripts/chaos`: the redundant stack under steady traffic while its components crash.

The stack is the demo's (devtools/demo.py: the configs `compose/redundant.yml` mounts, two link
pairs, two diode simulators at 0 loss, the dedup service, Redis with AOF, a Kafka target). A
mirroring source sends records at a steady rate to both ingresses for `--minutes`; every
`--interval` seconds one component chosen at random (either ingress, either egress, either
diode simulator, the dedup service, Redis) is killed with SIGKILL and started again. At the end
it waits for the target to settle and prints what was sent, delivered once, duplicated at the
target and lost, with each component's RSS after warm-up, at the end and at its peak (every
sample in `rss.csv` of the work directory).

Exit 0 when every record was delivered exactly once, 1 otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from dedup_service.embedded import ServerProcess
from devtools.demo import OutputCounter, Topology, send_records, start_stack, tear_down
from devtools.harness import Stack, wait_progress

WARM_UP = 30.0  # seconds after which RSS is taken as the baseline
SAMPLE_EVERY = 5.0
VICTIMS = ("ingress-a", "ingress-b", "egress-a", "egress-b", "diode-a", "diode-b", "dedup", "redis")


@dataclass
class Kill:
    at: float  # seconds since the traffic started
    victim: str
    restart_s: float


@dataclass
class Memory:
    """RSS samples of one component (a restarted process starts a new series)."""

    warm: int | None = None
    last: int = 0
    peak: int = 0
    restarted: bool = False


@dataclass
class Chaos:
    victims: dict[str, ServerProcess]
    rng: random.Random
    order: list[str] = field(default_factory=list)  # victims in turn; empty: at random
    kills: list[Kill] = field(default_factory=list)
    memory: dict[str, Memory] = field(default_factory=dict)
    series: list[tuple[float, str, int, int]] = field(default_factory=list)  # t, name, pid, rss

    def strike(self, elapsed: float) -> None:
        if self.order:
            name = self.order[len(self.kills) % len(self.order)]
        else:
            name = self.rng.choice(sorted(self.victims))
        victim = self.victims[name]
        victim.kill()
        started = time.monotonic()
        victim.start(timeout=60.0)
        self.kills.append(Kill(elapsed, name, time.monotonic() - started))
        self.memory.setdefault(name, Memory()).restarted = True
        print(f"  t={elapsed:5.0f}s  kill -9 {name}; back in {self.kills[-1].restart_s:.1f}s")

    def sample(self, elapsed: float) -> None:
        for name, server in self.victims.items():
            rss = current_rss(server)
            if rss is None:
                continue
            memory = self.memory.setdefault(name, Memory())
            assert server.process is not None
            self.series.append((elapsed, name, server.process.pid, rss))
            memory.last = rss
            memory.peak = max(memory.peak, rss)
            if memory.warm is None and elapsed >= WARM_UP:
                memory.warm = rss


def write_series(path: Path, series: list[tuple[float, str, int, int]]) -> None:
    """Every RSS sample as CSV (seconds since the traffic started, component, pid, bytes): a
    restarted component shows as a new pid."""
    lines = ["seconds,component,pid,rss_bytes"]
    lines += [f"{t:.1f},{name},{pid},{rss}" for t, name, pid, rss in series]
    path.write_text("\n".join(lines) + "\n")
    print(f"  RSS every {SAMPLE_EVERY:g}s of each component: {path}")


def current_rss(server: ServerProcess) -> int | None:
    """The live process's resident set size in bytes (None while it is down)."""
    if server.process is None or server.process.poll() is not None:
        return None
    try:
        return int(psutil.Process(server.process.pid).memory_info().rss)
    except psutil.Error:  # exited between the poll and the read
        return None


def victims_of(stack: Stack, topology: Topology) -> dict[str, ServerProcess]:
    found: dict[str, ServerProcess] = {"dedup": topology.dedup, "redis": stack["redis"]}
    for link in topology.links:
        found[f"ingress-{link.name}"] = link.ingress
        found[f"egress-{link.name}"] = link.egress
        found[f"diode-{link.name}"] = link.sim
    return found


@dataclass
class Outcome:
    sent: int
    delivered: int
    duplicates: int
    killed: list[str]
    spooled: int  # chunks still waiting in the egresses' spools when the wait ended

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def exactly_once(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def run_chaos(args: argparse.Namespace) -> Outcome:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ddc-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    counter: OutputCounter | None = None
    total = int(args.rate * args.minutes * 60)
    print(
        f"DDC chaos: {total:,} records at {args.rate:,.0f}/s over {args.minutes} min, one "
        f"component killed every {args.interval:.0f}s (seed {args.seed}); logs in {workdir}"
    )
    try:
        topology = start_stack(stack, workdir, 0.0)
        counter = OutputCounter(topology.bootstrap)
        chaos = Chaos(victims_of(stack, topology), random.Random(args.seed), args.victims)
        sender = threading.Thread(
            target=send_records, args=(topology.links, total, args.rate, lambda: None), daemon=True
        )
        started = time.monotonic()
        sender.start()
        next_kill = started + args.interval
        while sender.is_alive():
            sender.join(min(SAMPLE_EVERY, max(0.0, next_kill - time.monotonic())))
            now = time.monotonic()
            chaos.sample(now - started)
            if now >= next_kill and sender.is_alive():
                chaos.strike(now - started)
                next_kill += args.interval  # a fixed schedule, however long a restart took
        sent_s = time.monotonic() - started
        print(f"  sent {total:,} records to each link in {sent_s:.0f}s; waiting for the target")
        wait_progress(
            lambda: counter.poll() if counter is not None else 0,
            lambda done: done >= total,
            args.settle,
            args.stall,
            0.5,
        )
        time.sleep(2.0)  # a late duplicate still shows
        chaos.sample(time.monotonic() - started)
        write_series(workdir / "rss.csv", chaos.series)
        return report(total, counter, chaos, spooled_chunks(topology))
    finally:
        tear_down(args, stack, counter, workdir)


def spooled_chunks(topology: Topology) -> int:
    """Chunks both egresses still hold for the dedup service (not lost: not yet confirmed)."""
    return sum(int(link.egress.metric("ddc_egress_spool_chunks")) for link in topology.links)


def report(total: int, counter: OutputCounter, chaos: Chaos, spooled: int) -> Outcome:
    outcome = Outcome(
        total, counter.poll(), counter.duplicates, [kill.victim for kill in chaos.kills], spooled
    )
    rows = [
        ("records sent (to each link)", f"{outcome.sent:,}"),
        ("delivered once", f"{outcome.delivered:,}"),
        ("duplicates reaching the target", f"{outcome.duplicates:,}"),
        ("not delivered", f"{outcome.lost:,}"),
        ("chunks still in the egresses' spools", f"{outcome.spooled:,}"),
        ("components killed", ", ".join(outcome.killed) or "none"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("\n  RSS MiB       after warm-up      at end        peak   (restarted: new series)")
    for name in sorted(chaos.memory):
        memory = chaos.memory[name]
        warm = "-" if memory.warm is None else f"{memory.warm / 2**20:.1f}"
        mark = "  restarted" if memory.restarted else ""
        print(
            f"  {name:<12} {warm:>12} {memory.last / 2**20:>12.1f} "
            f"{memory.peak / 2**20:>10.1f}{mark}"
        )
    ok = outcome.exactly_once
    print("\nresult:", "every record delivered exactly once" if ok else "LOSS OR DUPLICATES")
    return outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic time (default 10)")
    parser.add_argument("--rate", type=float, default=1000.0, help="records/s (default 1000)")
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between kills (default 30)"
    )
    parser.add_argument("--seed", type=int, default=1, help="victim choice seed (default 1)")
    parser.add_argument(
        "--settle", type=float, default=180.0, help="max wait for the target after sending (s)"
    )
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up when nothing arrives for this long (s)"
    )
    parser.add_argument(
        "--victims",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        help=f"kill these in turn instead of at random (of: {', '.join(VICTIMS)})",
    )
    parser.add_argument("--workdir", help="keep logs and data here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.interval <= 0:
        parser.error("--minutes, --rate and --interval must be greater than 0")
    unknown = sorted(set(args.victims) - set(VICTIMS))
    if unknown:
        parser.error(f"--victims: unknown {', '.join(unknown)} (known: {', '.join(VICTIMS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    return 0 if run_chaos(parse_args(argv)).exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
