"""The supervisor with real processes and a real broker: Kafka consumer-group failover.

Two link pairs (real `ddc ingress` with a Kafka source, real `ddc egress` with a Kafka sink) in
one consumer group, watched by a real `ddc supervise`. Kill -9 one egress: its ingress is paused
within grace + one poll interval, leaves the group, its partitions move to the other pair, and
every record produced from then on still reaches the target topic. Restart the egress: the
supervisor resumes the ingress, which rejoins the group and carries traffic again.

Records that the ingress of the dead pair sends during the blind window (between the kill and
the pause) are lost: that window is what `grace` trades against false alarms (docs/deployment.md).
The test therefore produces each phase while the group is stable.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from devtools.harness import Daemon, free_port, write_toml

NEEDED = (
    "ddc.ingress.proxy",
    "ddc.egress.proxy",
    "ddc.ingress.sources.kafka",
    "ddc.egress.sinks.kafka",
)
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        bool(MISSING), reason=f"the proxies' Kafka parts are not there yet: {MISSING}"
    ),
]

POLL, GRACE = 0.5, 2.0
SLACK = 0.75  # HTTP round trips and the test's own polling, on a shared 2-core machine
PARTITIONS = 4


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    from tests.integration.kafka.helpers import producer

    client = producer(bootstrap)
    for i in range(start, start + count):
        client.send(topic, key=b"%08d" % i, value=b"record %08d" % i, partition=i % PARTITIONS)
    client.flush(30)
    client.close()


def wait_keys(bootstrap: str, topic: str, wanted: set[bytes], timeout: float) -> set[bytes]:
    from tests.integration.kafka.helpers import read_topic

    consumed = read_topic(bootstrap, topic, lambda c: wanted <= {m.key for m in c.records}, timeout)
    return wanted - {m.key for m in consumed.records}


def assigned(daemon) -> list[str]:
    try:
        return daemon.health().get("assigned_partitions", [])
    except OSError:
        return []


def paused(daemon) -> bool | None:
    try:
        return daemon.health().get("paused")
    except OSError:
        return None


def supervisor(directory: Path, pairs) -> Daemon:
    """`ddc supervise` watching `pairs`, with an on_pause hook that logs the pair's name."""
    from tests.integration.kafka.helpers import admin_token_file

    port = free_port()
    config = write_toml(
        directory / "supervisor.toml",
        {
            "supervisor": {
                "http_listen": f"127.0.0.1:{port}",
                "poll_interval": POLL,
                "grace": GRACE,
                "timeout": 1.0,
                "token_file": str(admin_token_file(directory)),  # the ingresses' admin token
            },
            "supervisor.pairs": [
                {
                    "name": name,
                    "ingress": pair.ingress.url(""),
                    "egress": pair.egress.url(""),
                    "on_pause": 'echo "hook: paused $DDC_PAIR"',
                }
                for name, pair in pairs.items()
            ],
        },
    )
    return Daemon("supervise", config, port, directory / "supervisor.log")


def test_dead_egress_pauses_its_ingress_partitions_move_nothing_lost_then_resume(
    tmp_path, kafka_bootstrap
):
    from tests.integration.kafka.helpers import Pair, create_topics, unique, wait_until

    source_topic, target_topic, group = unique("sv-src"), unique("sv-dst"), unique("sv-group")
    create_topics(kafka_bootstrap, source_topic, target_topic, partitions=PARTITIONS)
    pairs = {
        name: Pair(
            tmp_path,
            name,
            source=kafka_bootstrap,
            sink=kafka_bootstrap,
            topics=[source_topic],
            group=group,
            sink_config={"topic": target_topic},
            ingress_transport={"heartbeat_interval": 0.2},
            egress_transport={"heartbeat_timeout": 1.0},
        )
        for name in ("one", "two")
    }
    one, two = pairs["one"], pairs["two"]
    watcher = supervisor(tmp_path, pairs)
    try:
        for pair in pairs.values():
            pair.start()
        watcher.start()
        wait_until(
            lambda: assigned(one.ingress) and assigned(two.ingress),
            30,
            message="both pairs in the group",
        )

        # phase 1: both pairs carry traffic
        produce(kafka_bootstrap, source_topic, 0, 400)
        assert (
            wait_keys(kafka_bootstrap, target_topic, {b"%08d" % i for i in range(400)}, 20) == set()
        )
        assert one.egress.metric("ddc_egress_records_delivered_total") > 0
        assert two.egress.metric("ddc_egress_records_delivered_total") > 0

        # kill -9 the egress of pair one: the supervisor pauses its ingress
        killed_at = time.monotonic()
        one.egress.kill()
        wait_until(
            lambda: paused(one.ingress),
            GRACE + POLL + 5,
            interval=0.05,
            message="ingress one paused",
        )
        paused_after = time.monotonic() - killed_at
        print(
            f"ingress one paused {paused_after:.2f}s after its egress was killed (grace {GRACE}, poll {POLL})"
        )
        assert paused_after <= GRACE + POLL + SLACK, f"paused {paused_after:.2f}s after the kill"
        # the supervisor logs once the pause has answered: the ingress may say paused first
        wait_until(lambda: "pair one: PAUSED ingress" in watcher.log(), 5, message="PAUSED logged")
        wait_until(lambda: "hook: paused one" in watcher.log(), 10, message="the on_pause hook")
        assert paused(two.ingress) is False

        # its partitions move to pair two, which carries everything produced now
        wait_until(
            lambda: len(assigned(two.ingress)) == PARTITIONS,
            30,
            message="all partitions on pair two",
        )
        assert assigned(one.ingress) == []
        before = two.egress.metric("ddc_egress_records_delivered_total")
        produce(kafka_bootstrap, source_topic, 400, 400)
        assert (
            wait_keys(kafka_bootstrap, target_topic, {b"%08d" % i for i in range(400, 800)}, 20)
            == set()
        )
        assert two.egress.metric("ddc_egress_records_delivered_total") - before >= 400

        # the egress comes back: the supervisor resumes the ingress, which rejoins the group
        one.egress.start()
        wait_until(
            lambda: paused(one.ingress) is False, 10, interval=0.05, message="ingress one resumed"
        )
        # as with the pause, the ingress may answer resumed before the supervisor logs it
        wait_until(lambda: "RESUMED ingress" in watcher.log(), 5, message="RESUMED logged")
        wait_until(
            lambda: assigned(one.ingress) and assigned(two.ingress),
            30,
            message="both pairs in the group again",
        )
        produce(kafka_bootstrap, source_topic, 800, 400)
        assert (
            wait_keys(kafka_bootstrap, target_topic, {b"%08d" % i for i in range(800, 1200)}, 20)
            == set()
        )
        assert (
            one.egress.metric("ddc_egress_records_delivered_total") > 0
        )  # the restarted egress delivers
    finally:
        watcher.stop()
        for pair in pairs.values():
            pair.ingress.kill()
            pair.egress.kill()
    assert "Traceback" not in watcher.log(), watcher.log()
