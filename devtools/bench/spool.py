"""`scripts/bench spool`: append + read + ack throughput of the egress spool's segment files,
against LMDB (`lmdb`, if installed) doing the same work in the same run.

Each store takes --count entries of --size bytes: appended one by one (what the receiver does),
read back in order in batches and acknowledged per batch (what the deliverer does), with an fsync
every --sync-interval seconds (the spool's sync(); LMDB: commit + env.sync()).
Printed: entries/s and MB/s (wall clock) and CPU time per entry for each, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

from ddc.egress.spool import DiskSpool


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench spool", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="200,60000", help="entry sizes in bytes, comma-separated"
    )
    parser.add_argument("--bytes", type=int, default=256 << 20, help="bytes per measurement")
    parser.add_argument(
        "--sync-interval", type=float, default=1.0, help="seconds between fsyncs (fsync_interval)"
    )
    parser.add_argument("--batch", type=int, default=500, help="entries read per ack")
    return parser.parse_args(argv)


def run_spool(directory: str, payload: bytes, count: int, args: argparse.Namespace) -> float:
    spool = DiskSpool(directory, 1 << 40, fsync_interval=1.0)
    start = synced = time.perf_counter()
    for i in range(count):
        spool.append(payload)
        if i % 100 == 0 and time.perf_counter() - synced >= args.sync_interval:
            spool.sync()
            synced = time.perf_counter()
        if i % args.batch == args.batch - 1:
            last = None
            while (item := spool.read()) is not None:
                last = item.seq
            if last is not None:
                spool.ack(last)
    while (item := spool.read()) is not None:
        spool.ack(item.seq)
    spool.sync()
    elapsed = time.perf_counter() - start
    spool.close()
    return elapsed


def run_lmdb(directory: str, payload: bytes, count: int, args: argparse.Namespace) -> float:
    import lmdb

    env = lmdb.open(directory, map_size=1 << 36, sync=False, metasync=False)
    start = synced = time.perf_counter()
    txn = env.begin(write=True)
    read_from = 0
    for i in range(count):
        txn.put(i.to_bytes(8, "big"), payload, append=True)
        if i % 100 == 0 and time.perf_counter() - synced >= args.sync_interval:
            txn.commit()
            env.sync(True)
            txn = env.begin(write=True)
            synced = time.perf_counter()
        if i % args.batch == args.batch - 1:
            cursor = txn.cursor()
            cursor.set_range(read_from.to_bytes(8, "big"))
            keys = []
            for key, value in cursor:
                _ = bytes(value)
                keys.append(key)
            for key in keys:  # the ack: delete what was delivered
                txn.delete(key)
            read_from = i + 1
    txn.commit()
    env.sync(True)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def measure(name: str, run: Callable[..., float], size: int, args: argparse.Namespace) -> float:
    count = max(1000, args.bytes // size)
    payload = os.urandom(size)
    with tempfile.TemporaryDirectory(prefix="ddc-bench-spool-", dir=os.environ.get("TMPDIR")) as d:
        cpu = time.process_time()
        elapsed = run(d, payload, count, args)
        cpu = time.process_time() - cpu
    rate = count / elapsed
    print(
        f"  {name:<14} {count:>9} x {size:>6} B  {rate:>10,.0f} entries/s  "
        f"{rate * size / 1e6:>8.1f} MB/s  {cpu / count * 1e6:>6.1f} us CPU/entry"
    )
    return rate


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        import lmdb  # noqa: F401

        have_lmdb = True
    except ModuleNotFoundError:
        have_lmdb = False
        print("lmdb not installed: measuring the segment files only (pip install lmdb)")
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"entries of {size} bytes (append one by one, read+ack per {args.batch}):")
        ours = measure("segment files", run_spool, size, args)
        if have_lmdb:
            theirs = measure("lmdb", run_lmdb, size, args)
            print(f"  segment files / lmdb = {ours / theirs:.2f}")
    return 0
