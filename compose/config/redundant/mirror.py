"""Traffic mirror of the redundant stack: the source application's side of "send to both pairs".

Every UDP datagram received on --listen is sent to each --to address (one per redundant
ingress). With --generate N it also emits N JSON records per second, each with a unique "id",
so the stack shows data flowing (and the dedup service has an id to merge on) without any
other source. Standard library only: it runs in the ddc image as `python mirror.py ...`.

Names are resolved once, at start, and again only after a send to that target failed (at most
once a second): a DNS lookup per datagram (0.24 ms through Docker's resolver) would cap the
mirror near 2,000 datagrams/s. Nothing is dropped silently: datagrams that could not be sent
(per target) and those the kernel dropped at the mirror's own socket (full receive buffer) are
counted, logged every 10 s while they grow and in the summary printed on SIGTERM/SIGINT, after
which it exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import sys
import time
import uuid
from typing import Any

log = logging.getLogger("mirror")
RETRY_RESOLVE_S = 1.0
REPORT_EVERY_S = 10.0
RECEIVE_BUFFER = 32 * 1024 * 1024


class Stop(Exception):
    """SIGTERM or SIGINT: finish with a summary."""


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class Target:
    """One --to address: its resolved address, re-resolved only after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.name = f"{host}:{port}"
        self.host, self.port = host, port
        self.address: tuple[str, int] | None = None
        self.resolve_after = 0.0  # monotonic time before which no new lookup is made
        self.sent = 0
        self.dropped = 0
        self.last_error = ""

    def resolve(self, now: float) -> tuple[str, int] | None:
        if self.address is None and now >= self.resolve_after:
            self.resolve_after = now + RETRY_RESOLVE_S
            try:
                info = socket.getaddrinfo(self.host, self.port, socket.AF_INET, socket.SOCK_DGRAM)
                host, port = info[0][4][:2]
                self.address = (str(host), int(port))
                log.info("%s is %s:%d", self.name, host, port)
            except OSError as exc:
                self.failed(f"cannot resolve: {exc}")
        return self.address

    def failed(self, error: str) -> None:
        if error != self.last_error:  # one line per new cause, the counts go in the reports
            log.warning("%s: %s (re-resolving)", self.name, error)
        self.last_error = error
        self.address = None


def kernel_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped at `sock` (full receive buffer), from /proc/net/udp."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    try:
        with open("/proc/net/udp") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 12 and fields[9] == inode:
                    return int(fields[12])
    except OSError:
        pass
    return 0


class Mirror:
    def __init__(self, targets: list[Target], listen: socket.socket | None) -> None:
        self.targets = targets
        self.listen = listen
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.received = 0
        self.generated = 0
        self.reported: tuple[int, ...] = ()

    def send(self, payload: bytes) -> None:
        now = time.monotonic()
        for target in self.targets:  # a pair being down must not stop the other copy
            address = target.resolve(now)
            if address is None:
                target.dropped += 1
                continue
            try:
                self.out.sendto(payload, address)
                target.sent += 1
            except OSError as exc:
                target.dropped += 1
                target.failed(f"send failed: {exc}")

    def counts(self) -> dict[str, Any]:
        drops = kernel_drops(self.listen) if self.listen is not None else 0
        return {
            "received": self.received,
            "generated": self.generated,
            "kernel_drops": drops,
            "sent": {t.name: t.sent for t in self.targets},
            "dropped": {t.name: t.dropped for t in self.targets},
        }

    def report(self, final: bool = False) -> None:
        counts = self.counts()
        losses = (counts["kernel_drops"], *counts["dropped"].values())
        if final or (losses != self.reported and any(losses)):
            log.log(
                logging.INFO if final or not any(losses) else logging.WARNING,
                "%s %s",
                "stopped:" if final else "counts:",
                json.dumps(counts, sort_keys=True),
            )
        self.reported = losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", type=hostport, help="receive datagrams here (optional)")
    parser.add_argument(
        "--to", type=hostport, action="append", required=True, help="repeat per pair"
    )
    parser.add_argument("--generate", type=float, default=0.0, help="JSON records per second")
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many generated (0: never)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mirror: %(message)s")
    if args.listen is None and args.generate <= 0:
        parser.error("nothing to do: give --listen and/or --generate")

    def stop(signum: int, frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    inp = None
    if args.listen is not None:
        inp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        inp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        inp.bind(args.listen)
    mirror = Mirror([Target(*to) for to in args.to], inp)
    now = time.monotonic()
    for target in mirror.targets:
        target.resolve(now)
    if inp is not None:
        log.info("mirroring %s:%s to %s", *args.listen, ", ".join(t.name for t in mirror.targets))

    run = uuid.uuid4().hex[:8]
    period = 1.0 / args.generate if args.generate > 0 else None
    next_at = time.monotonic()
    report_at = next_at + REPORT_EVERY_S
    try:
        while True:
            now = time.monotonic()
            timeout = min(report_at, next_at if period else report_at) - now
            if inp is not None:
                if select.select([inp], [], [], max(0.0, timeout))[0]:
                    # drain what is queued before looking at the clock again
                    for _ in range(256):
                        try:
                            payload = inp.recv(65535, socket.MSG_DONTWAIT)
                        except BlockingIOError:
                            break
                        mirror.received += 1
                        mirror.send(payload)
            else:
                time.sleep(max(0.0, timeout))
            now = time.monotonic()
            if period and now >= next_at:
                mirror.generated += 1
                n = mirror.generated
                mirror.send(json.dumps({"id": f"{run}-{n}", "seq": n, "ts": time.time()}).encode())
                next_at += period
                if args.count and n >= args.count:
                    mirror.report(final=True)
                    return 0
            if now >= report_at:
                mirror.report()
                report_at = now + REPORT_EVERY_S
    except Stop:
        mirror.report(final=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
