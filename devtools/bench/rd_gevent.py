"""How a gevent process should wait on librdkafka: the two ways the Kafka source could consume.

`python -m devtools.bench.rd_gevent [--bootstrap B] [--records N]` fills a topic, then reads it
all in a monkey-patched child process per mode, with a 1 ms ticker greenlet beside it:
  nowait      consume(timeout=0) in the greenlet, a cooperative sleep of IDLE_WAIT when nothing
              was fetched, gevent.idle() after each batch (what ddc.ingress.sources.kafka_rd does)
  threadpool  consume(timeout=0.1) in gevent's threadpool, the greenlet waiting for the result
Prints msgs/s, CPU seconds and how late the ticker ran (p99, max: how long the hub was held;
on a loaded machine the OS scheduler adds to both).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from devtools.embedded_kafka import create_topics

CHILD = r"""
from gevent import monkey; monkey.patch_all()
import json, resource, sys, time
import gevent
from confluent_kafka import Consumer
mode, bootstrap, topic, count, idle = sys.argv[1:6]
count, idle = int(count), float(idle)
delays = []
def ticker():
    last = time.monotonic()
    while True:
        gevent.sleep(0.001)
        now = time.monotonic()
        delays.append(now - last - 0.001)
        last = now
gevent.spawn(ticker)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rdg-{mode}-{time.time()}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
pool = gevent.get_hub().threadpool
read, first = 0, 0.0
deadline = time.monotonic() + 300
while read < count and time.monotonic() < deadline:
    if mode == "nowait":
        messages = consumer.consume(num_messages=2000, timeout=0)
        if messages:
            gevent.idle()  # IO and timers run between batches
        else:
            gevent.sleep(idle)
    else:
        messages = pool.spawn(consumer.consume, 2000, 0.1).get()
    if messages and not first:
        first = time.monotonic()
        delays.clear()
    read += sum(1 for m in messages if m.error() is None)
span = time.monotonic() - first
cpu = resource.getrusage(resource.RUSAGE_SELF)
consumer.close()
delays.sort()
p99 = delays[int(len(delays) * 0.99)] if delays else 0.0
print(json.dumps({"read": read, "rate": read / span if span else 0,
                  "cpu": cpu.ru_utime + cpu.ru_stime, "p99_ms": p99 * 1000,
                  "max_ms": (delays[-1] if delays else 0.0) * 1000}))
"""


def fill(bootstrap: str, topic: str, count: int, size: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    payload = os.urandom(size)
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=b"%010d" % i, value=payload)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)


def run(mode: str, bootstrap: str, topic: str, count: int, idle: float) -> dict[str, float]:
    argv = [sys.executable, "-c", CHILD, mode, bootstrap, topic, str(count), str(idle)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=400, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="devtools.bench.rd_gevent", description=__doc__)
    parser.add_argument("--bootstrap", help="external broker (else an embedded Tansu)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    from devtools.embedded_kafka import EmbeddedKafka

    broker = None if args.bootstrap else EmbeddedKafka().start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    try:
        topic = f"rdg-{os.getpid()}"
        create_topics(bootstrap, topic, partitions=4)
        fill(bootstrap, topic, args.records, 200)
        print(f"load average {os.getloadavg()[0]:.1f}; {args.records:,} records of 200 bytes")
        modes = [("nowait", 0.005), ("nowait", 0.001), ("threadpool", 0.0)]
        for round_ in range(1, args.rounds + 1):
            for mode, idle in modes:
                r = run(mode, bootstrap, topic, args.records, idle)
                label = f"{mode} (sleep {idle * 1000:g} ms)" if mode == "nowait" else mode
                print(
                    f"round {round_} {label:22} {r['rate']:10,.0f} msgs/s  CPU {r['cpu']:.2f} s"
                    f"  1 ms ticker late by p99 {r['p99_ms']:.1f} / max {r['max_ms']:.1f} ms"
                    f"  ({r['read']:,.0f} read)"
                )
    finally:
        if broker is not None:
            broker.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
