"""Each compose stack with traffic and the failure its pattern exists for (scripts/test-stacks
starts the engine, builds the images and isolates the containers first).

    python tests/stacks/run_stacks.py [--docker /usr/bin/docker] [STACK ...]

Every stack: up, wait for health, traffic checked record by record at the target, the failure,
the hardening facts of every DDC container (DockerStack.assert_hardened), down. Prints the
seconds per stack; exit 1 if any stack failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable

from devtools.harness import parse_metrics, poll_until, wait_until
from tests.integration.streams import split_length_prefixed
from tests.stacks.docker_stack import (
    DockerStack,
    payloads,
    send_tcp,
    send_udp,
)


def file_records(stack: DockerStack, service: str, path: str) -> list[bytes]:
    return split_length_prefixed(stack.volume_file(service, path))


def wait_records(stack: DockerStack, service: str, path: str, expected: list[bytes]) -> None:
    def arrived() -> bool:
        return len(file_records(stack, service, path)) >= len(expected)

    try:
        wait_until(arrived, timeout=60, interval=0.5)
    finally:
        got = file_records(stack, service, path)
        if got != expected:
            differ = [i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b]
            heads = [got[i][:14] for i in differ[:3]]  # each record starts with its tag-index
            raise AssertionError(
                f"{stack.name}/{service}: {len(got)} records, {len(expected)} expected, "
                f"first difference at {differ[:1] or min(len(got), len(expected))} "
                f"({len(differ)} differ; there: {heads})"
            )


def log_times(log: str, text: str) -> list[float]:
    """Times (epoch seconds) of the log lines containing `text` (the daemons' asctime)."""
    from datetime import datetime

    times = []
    for line in log.splitlines():
        if text in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())  # both logs: the same clock and zone
    return times


def single_pair(stack: DockerStack) -> None:
    stack.up()
    stack.wait_healthy(stack.ddc_services())
    sent = payloads(3000, "single")
    send_udp((stack.ip("ingress", "source"), 7000), sent, rate=2000)
    stack.phase("sent")
    wait_records(stack, "egress", "/var/lib/ddc/records.bin", sent)
    stack.phase("delivered")
    stack.assert_hardened()
    # the image carries ISA-L: its FEC ingress computes parity with it, not the zfec fallback
    encoder = [ln for ln in stack.logs("ingress").splitlines() if "parity computed by" in ln]
    assert encoder and encoder[-1].endswith("parity computed by ISA-L (libisal.so.2)"), encoder


def multi_pair(stack: DockerStack) -> None:
    stack.up()
    stack.wait_healthy(stack.ddc_services())
    stack.phase("healthy")
    udp, tcp = payloads(2000, "pair-a"), payloads(2000, "pair-b", sizes=(0, 10, 5000, 70000))
    sender = threading.Thread(
        target=send_udp, args=((stack.ip("ingress-a", "source"), 7010), udp, 2000)
    )
    sender.start()
    send_tcp((stack.ip("ingress-b", "source"), 7020), tcp)
    sender.join()
    stack.phase("sent")
    wait_records(stack, "egress-a", "/var/lib/ddc/pair-a.bin", udp)
    wait_records(stack, "egress-b", "/var/lib/ddc/pair-b.bin", tcp)
    stack.phase("delivered")
    stack.assert_hardened()
    stack.phase("hardening checked")


def redundant(stack: DockerStack) -> None:
    # the brokers first: the dedup service's topic exists before anything is forwarded
    stack.up("kafka", "redis")
    stack.kafka("target", "create", "kafka:9092", "deduplicated", "1")
    stack.up()
    stack.wait_healthy([s for s in stack.ddc_services() if s != "mirror"])
    stack.phase("healthy")
    count = 5000
    records = [json.dumps({"id": f"t-{i}", "seq": i}).encode() for i in range(count)]
    mirror = (stack.ip("mirror", "source"), 7100)
    sender = threading.Thread(target=send_udp, args=(mirror, records, 2500))
    before = stack.inspect("egress-a")
    sender.start()
    time.sleep(0.8)  # mid stream
    # the egress process crashes (kill -9 of the container's process: `docker kill` would be a
    # manual stop, which no restart policy undoes)
    os.kill(before["State"]["Pid"], signal.SIGKILL)
    sender.join()
    result = json.loads(
        stack.kafka("target", "count", "kafka:9092", "deduplicated", "t-", str(count), "90")
    )
    stack.phase("counted")
    assert result == {"distinct": count, "copies": count, "missing": []}, result

    # the mirror started once both ingresses were healthy: its generated records from the very
    # first arrived (they were lost on both links while it started before the ingresses)
    def generated() -> list[int]:
        return json.loads(stack.kafka("target", "generated", "kafka:9092", "deduplicated"))["seqs"]

    # at 5 a second the 50th is made ~10 s after the mirror started: wait for it
    poll_until(lambda: set(range(1, 51)) <= set(generated()), 30, 1.0)
    seqs = generated()
    missing = sorted(set(range(1, 51)) - set(seqs))
    repeated = sorted({seq for seq in seqs if seqs.count(seq) > 1})
    assert seqs[:50] == list(range(1, 51)) and not repeated, (
        f"first 50 missing {missing}, repeated {repeated}, first {seqs[:5]}"
    )
    # link a really lost part of the stream: the dedup service got fewer records on it
    with urllib.request.urlopen("http://127.0.0.1:8080/metrics", timeout=5) as response:
        dedup = parse_metrics(response.read().decode())
    on_a = dedup.get('ddc_dedup_records_received_total{link="a"}', 0)
    on_b = dedup.get('ddc_dedup_records_received_total{link="b"}', 0)
    assert on_a < on_b, (on_a, on_b)
    print(f"  redundant: records received by the dedup service on link a {on_a:.0f}, b {on_b:.0f}")
    # the egresses sent the Docker secret's token (every record arrived); a POST without it is
    # refused and counted
    assert stack.post_status("dedup", "http://127.0.0.1:8080/v1/records") == 401
    refused = stack.metrics("dedup", 8080)
    assert refused.get('ddc_dedup_api_auth_failures_total{reason="missing"}') == 1, refused
    # Redis requires the password from the secret (the dedup service gave it: records arrived)
    assert "NOAUTH" in stack.exec("redis", "redis-cli", "ping")
    # the links authenticated: one session each, nothing refused on link b
    for service, port in (("egress-a", 9132), ("egress-b", 9142)):
        auth = stack.healthz(service, port)["auth"]
        assert auth["session"] is not None, (service, auth)
    assert not any(stack.healthz("egress-b", 9142)["auth"]["failures"].values())
    # its restart policy brought it back by itself (without one a killed egress stayed down)
    stack.wait_restarted("egress-a", before)
    stack.wait_healthy(["egress-a"])
    stack.phase("egress-a restarted")
    stack.assert_hardened(skip_health=("mirror",))
    stack.phase("hardening checked")
    # the mirror dropped nothing at its socket; SIGTERM ends it at once with exit 0
    container = stack.container("mirror")
    started = time.monotonic()  # docker's own client: docker-compose's start-up is not the mirror's
    stack.run(stack.docker, "stop", "-t", "10", container)
    stopped_in = time.monotonic() - started
    state = stack.inspect("mirror")["State"]
    # exit 0: its SIGTERM handler (killed after the grace period it would be 137, after 10 s)
    assert state["ExitCode"] == 0 and stopped_in < 8, (state["ExitCode"], stopped_in)
    final = [ln for ln in stack.logs("mirror").splitlines() if "mirror: stopped: " in ln]
    counts = json.loads(final[-1].split("mirror: stopped: ", 1)[1])
    assert counts["kernel_drops"] == 0 and counts["received"] == count, counts
    print(f"  redundant: mirror stopped in {stopped_in:.1f} s, counts {counts}")


def supervisor_metrics() -> dict[str, float]:
    """From the host, through the published port (it was unreachable: defect 1)."""
    with urllib.request.urlopen("http://127.0.0.1:9190/metrics", timeout=5) as response:
        return parse_metrics(response.read().decode())


def kafka_group(stack: DockerStack) -> None:
    stack.up("kafka-source", "kafka-target")
    stack.kafka("source", "create", "kafka-source:9092", "events", "4")
    stack.kafka("target", "create", "kafka-target:9092", "events", "4")
    stack.up()
    stack.wait_healthy(stack.ddc_services())
    wait_until(
        lambda: supervisor_metrics().get('ddc_supervisor_egress_healthy{pair="pair-1"}') == 1,
        timeout=60,
        interval=1,
    )
    stack.phase("healthy")
    first = 2000
    stack.kafka("source", "produce", "kafka-source:9092", "events", "k-", "0", str(first))
    result = json.loads(
        stack.kafka("target", "count", "kafka-target:9092", "events", "k-", str(first), "120")
    )
    assert result["distinct"] == first, result
    stack.phase("first batch counted")
    for service, port in (("ingress-1", 9151), ("ingress-2", 9161)):
        assert stack.metrics(service, port).get("ddc_ingress_records_total", 0) > 0, service
    # egress 1 goes away: the supervisor pauses ingress 1, Kafka moves its partitions to pair 2
    stack.compose("stop", "-t", "5", "egress-1")
    wait_until(
        lambda: supervisor_metrics().get('ddc_supervisor_ingress_paused{pair="pair-1"}') == 1,
        timeout=60,
        interval=1,
    )
    stack.phase("ingress 1 paused")
    before = stack.metrics("ingress-1", 9151).get("ddc_ingress_records_total", 0)
    second = 2000
    stack.kafka("source", "produce", "kafka-source:9092", "events", "k-", str(first), str(second))
    result = json.loads(
        stack.kafka(
            "target", "count", "kafka-target:9092", "events", "k-", str(first + second), "150"
        )
    )
    assert result["distinct"] == first + second, result
    stack.phase("second batch counted")
    assert stack.metrics("ingress-1", 9151).get("ddc_ingress_records_total", 0) == before
    # the supervisor paused ingress 1 with the Docker secret's token; a POST without it is refused
    assert stack.post_status("ingress-1", "http://127.0.0.1:9151/admin/resume") == 401
    refused = stack.metrics("ingress-1", 9151)
    assert refused.get('ddc_ingress_admin_auth_failures_total{reason="missing"}') == 1, refused
    assert refused.get("ddc_ingress_paused") == 1, refused
    stack.up("egress-1")
    wait_until(
        lambda: supervisor_metrics().get('ddc_supervisor_ingress_paused{pair="pair-1"}') == 0,
        timeout=60,
        interval=1,
    )
    stack.phase("ingress 1 resumed")
    stack.assert_hardened()


def cold_standby(stack: DockerStack) -> None:
    stack.up()
    stack.wait_healthy(stack.ddc_services())
    target = (stack.ip("ingress", "source"), 7300)
    first = payloads(1000, "before")
    send_udp(target, first, rate=2000)
    wait_records(stack, "egress", "/var/lib/ddc/records.bin", first)
    stack.phase("first batch delivered")
    startups = stack.metrics("egress", 9172).get("ddc_egress_startups_total", 0)
    # a crash: the process dies (not `docker kill`, which is a manual stop)
    before = stack.inspect("ingress")
    os.kill(before["State"]["Pid"], signal.SIGKILL)
    killed = time.monotonic()
    stack.wait_restarted("ingress", before)
    # the link resyncs on the restarted ingress's StartUp, not after heartbeat_timeout
    wait_until(
        lambda: stack.metrics("egress", 9172).get("ddc_egress_startups_total", 0) > startups,
        timeout=30,
        interval=0.2,
    )
    back = time.monotonic() - killed
    stack.phase("resynced")
    egress = stack.metrics("egress", 9172)
    assert egress.get("ddc_egress_link_up") == 1
    assert egress.get("ddc_egress_foreign_packets_total", 0) == 0, egress  # nothing refused
    # "at once": the egress took the StartUp the restarted ingress sent, not heartbeat_timeout
    # (5 s) later; both log lines carry the time
    sent = log_times(stack.logs("ingress"), "sending to egress")[-1]  # just before the burst
    taken = log_times(stack.logs("egress"), "StartUp of a new session from")[-1]  # (auth on)
    assert 0 <= taken - sent < 1.0, (sent, taken)
    second = payloads(1000, "after")
    send_udp(target, second, rate=2000)
    wait_records(stack, "egress", "/var/lib/ddc/records.bin", first + second)
    print(f"  cold-standby: resynced {taken - sent:.3f} s after the restarted ingress's StartUp")
    print(f"  cold-standby: {back:.1f} s from kill -9 to the egress's resync (restart included)")
    stack.wait_healthy(stack.ddc_services())
    stack.assert_hardened()


SCENARIOS: dict[str, Callable[[DockerStack], None]] = {
    "single-pair": single_pair,
    "multi-pair": multi_pair,
    "redundant": redundant,
    "kafka-group": kafka_group,
    "cold-standby": cold_standby,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docker", default="docker")
    parser.add_argument("stacks", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    # scripts/test-stacks ends this with SIGTERM when it is interrupted: the stack still goes down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    timings: dict[str, tuple[float, str]] = {}
    for name in args.stacks:
        stack = DockerStack(name, args.docker)
        started = stack.started
        outcome = "ok"
        try:
            stack.down()  # whatever an interrupted run left (volumes with records in them)
            SCENARIOS[name](stack)
        except Exception:
            outcome = "FAILED"
            traceback.print_exc()
            for service in stack.compose("ps", "--services").split():
                try:
                    print(f"--- {name}/{service} log tail ---\n{stack.logs(service)[-1500:]}")
                except Exception:
                    pass
        finally:
            try:
                stack.phase("down")
                stack.down()
            except Exception as exc:
                print(f"{name}: down failed: {exc}")
        timings[name] = (time.monotonic() - started, outcome)
        print(f"stack {name}: {outcome} in {timings[name][0]:.1f} s", flush=True)
    print("timings: " + ", ".join(f"{n} {t:.1f} s ({o})" for n, (t, o) in timings.items()))
    return 0 if all(o == "ok" for _, o in timings.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
