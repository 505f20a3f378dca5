"""`scripts/bench spool_stalls`: how long the egress's receive loop waits in the disk spool, per
segment size, in one run.

For each --segment-mib: 60 KB entries appended through `DiskSpool` at --rate MB/s for --seconds
under gevent, as the egress does: flushed and read back (acknowledged) every 32 appends, sync()
every second with its blocking calls in gevent's threadpool. Printed per segment size: the rate
reached, the worst append and how many appends took over 5 ms (the receive loop waits that long:
datagrams pile up in the socket), and the process's CPU time.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the patch, as in the daemons)
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from ddc.egress.spool import DiskSpool  # noqa: E402

ENTRY = 60_000
SLOW = 0.005  # seconds


def measure(segment_bytes: int, rate: float, seconds: float, directory: str) -> dict[str, Any]:
    work = tempfile.mkdtemp(dir=directory)
    spool = DiskSpool(work, 8 << 30, segment_bytes=segment_bytes)
    pool = gevent.get_hub().threadpool

    def syncing() -> None:
        while True:
            gevent.sleep(1.0)
            spool.sync(run=lambda func, *args: pool.apply(func, args))

    syncer = gevent.spawn(syncing)
    payload = os.urandom(ENTRY)
    cpu, started = os.times(), time.perf_counter()
    worst, slow, count = 0.0, 0, 0
    try:
        while (now := time.perf_counter()) - started < seconds:
            if rate and count * ENTRY > (now - started) * rate:
                gevent.sleep(0.001)
                continue
            spool.append(payload)
            if count % 32 == 31:
                spool.flush()
                while (item := spool.read()) is not None:
                    spool.ack(item.seq)
                gevent.sleep(0)
            took = time.perf_counter() - now
            worst, slow, count = max(worst, took), slow + (took > SLOW), count + 1
    finally:
        syncer.kill()
        spool.close()
        shutil.rmtree(work)
    elapsed, used = time.perf_counter() - started, os.times()
    return {
        "mb_per_s": count * ENTRY / elapsed / 1e6,
        "worst_ms": worst * 1000,
        "slow": slow,
        "cpu_s": used.user + used.system - cpu.user - cpu.system,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench spool_stalls", description=__doc__)
    parser.add_argument("--segment-mib", default="64,16,4", help="segment sizes, comma-separated")
    parser.add_argument("--rate", type=float, default=300.0, help="MB/s offered (0: flat out)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the spools go")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("segment   MB/s  worst append  appends > 5 ms  CPU s")
    for mib in (int(text) for text in args.segment_mib.split(",")):
        os.sync()  # every size starts with no dirty pages
        result = measure(mib << 20, args.rate * 1e6, args.seconds, args.dir)
        print(
            f"{mib:4d} MiB {result['mb_per_s']:6.0f} {result['worst_ms']:10.1f} ms "
            f"{result['slow']:15d} {result['cpu_s']:6.1f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0
