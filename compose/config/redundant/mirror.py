"""Traffic mirror of the redundant stack: the source application's side of "send to both pairs".

Every UDP datagram received on --listen is sent to each --to address (one per redundant
ingress). With --generate N it also emits N JSON records per second, each with a unique "id",
so the stack shows data flowing (and the dedup service has an id to merge on) without any
other source. Standard library only: it runs in the ddc image as `python mirror.py ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import socket
import sys
import time
import uuid

log = logging.getLogger("mirror")


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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

    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inp = None
    if args.listen is not None:
        inp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        inp.bind(args.listen)
        log.info("mirroring %s:%s to %s", *args.listen, ", ".join(f"{h}:{p}" for h, p in args.to))

    def send(payload: bytes) -> None:
        for target in args.to:
            try:
                out.sendto(payload, target)
            except OSError as exc:  # a pair being down must not stop the other copy
                log.warning("send to %s:%s failed: %s", target[0], target[1], exc)

    run = uuid.uuid4().hex[:8]
    generated = 0
    period = 1.0 / args.generate if args.generate > 0 else None
    next_at = time.monotonic()
    while True:
        timeout = max(0.0, next_at - time.monotonic()) if period else None
        if inp is not None:
            if select.select([inp], [], [], timeout)[0]:
                send(inp.recvfrom(65535)[0])
        else:
            time.sleep(timeout or 0.0)
        if period and time.monotonic() >= next_at:
            generated += 1
            record = {"id": f"{run}-{generated}", "seq": generated, "ts": time.time()}
            send(json.dumps(record).encode())
            next_at += period
            if args.count and generated >= args.count:
                log.info("generated %d records", generated)
                return 0


if __name__ == "__main__":
    sys.exit(main())
