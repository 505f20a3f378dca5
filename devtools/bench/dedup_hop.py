"""`python -m devtools.bench.dedup_hop`: requests/s of small POST /v1/records on one connection.

The egress dedup sink keeps one HTTP connection to the service. This measures a one-record
POST on a kept-alive connection (plain http.client, and the sink's own connection class) and on
a new connection per request, against a `ddc-dedup serve` process (file sink, embedded Redis).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ddc.egress.sinks.dedup_client import DedupConnection
from dedup_service.embedded import EmbeddedRedis
from devtools.bench.dedup import start_service

TOKEN = "bench-dedup-hop-token-0123456789"


def measure(
    port: int, requests: int, connect: Callable[[], http.client.HTTPConnection], reuse: bool
) -> tuple[float, float]:
    """(requests/s, median seconds per request)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    times = []
    conn = connect()
    started = time.perf_counter()
    for _ in range(requests):
        body = json.dumps({"link": "a", "records": [{"id": uuid.uuid4().hex, "value": "dg=="}]})
        begin = time.perf_counter()
        if not reuse:
            conn = connect()
        conn.request("POST", "/v1/records", body=body.encode(), headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"answered {response.status}: {data[:200]!r}")
        if not reuse:
            conn.close()
        times.append(time.perf_counter() - begin)
    return requests / (time.perf_counter() - started), statistics.median(times)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench dedup_hop", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ddc-bench-hop-") as name:
        tmp = Path(name)
        (tmp / "token").write_text(TOKEN)
        redis = EmbeddedRedis(data_dir=tmp / "redis").start()
        service = start_service(
            tmp,
            {"redis_url": redis.url, "links": ["a"], "api_token_file": str(tmp / "token")},
            {"type": "file", "path": str(tmp / "out.bin")},
        )
        try:
            port = service.http_port
            modes = {
                "kept-alive, http.client.HTTPConnection": (http.client.HTTPConnection, True),
                "kept-alive, DedupConnection (the sink's)": (DedupConnection, True),
                "new connection per request": (http.client.HTTPConnection, False),
            }
            for label, (kind, reuse) in modes.items():
                rate, median = measure(
                    port,
                    args.requests,
                    lambda kind=kind: kind("127.0.0.1", port, timeout=30),
                    reuse,
                )
                print(f"{label:45s} {rate:8.1f} requests/s  median {median * 1000:6.2f} ms")
        finally:
            service.stop()
            redis.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
