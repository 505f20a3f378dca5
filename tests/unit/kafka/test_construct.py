"""A kafka-python client whose constructor fails (broker down) leaves nothing running behind.

The regression: kafka-python 3.0 did not close the network client of a producer whose bootstrap
failed; under gevent, once the garbage collector freed half of its wakeup socketpair, the other
half's io watcher fired on every turn of the hub, and a `gevent.idle()` in the Kafka sink never
returned (the 60 s outage test's stall, docs/spool.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from ddc.kafka.construct import create
from devtools.harness import child_env

# Run in a child: the daemons' monkey-patching (gevent selectors, threads) is what makes a leaked
# client spin the hub. Prints, for each way of constructing, whether the hub could go idle after
# a failed constructor and a garbage collection, and how many gevent selectors were left.
CHILD = """
from gevent import monkey
monkey.patch_all()
import gc, json, sys
import gevent
from gevent.selectors import GeventSelector
from kafka import KafkaConsumer, KafkaProducer
from dedup_service.embedded import free_port
from ddc.kafka.construct import create

def after_failure(make):
    try:
        make(bootstrap_servers="127.0.0.1:%d" % free_port(), bootstrap_timeout_ms=300)
    except Exception as exc:
        error = type(exc).__name__
    else:
        error = None
    gc.collect()
    gevent.sleep(0.05)
    try:
        with gevent.Timeout(1.0):
            gevent.idle()
        idle = True
    except gevent.Timeout:
        idle = False
    left = sum(isinstance(o, GeventSelector) for o in gc.get_objects())
    return {"error": error, "idle": idle, "selectors": left}

results = {}
for name, cls in (("producer", KafkaProducer), ("consumer", KafkaConsumer)):
    results[name] = after_failure(lambda **kw: create(cls, **kw))
results["plain producer"] = after_failure(KafkaProducer)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def failed_constructors() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=child_env(),
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["producer", "consumer"])
def test_failed_constructor_leaves_no_selector_and_the_hub_goes_idle(failed_constructors, kind):
    result = failed_constructors[kind]
    assert result == {"error": "KafkaTimeoutError", "idle": True, "selectors": 0}


def test_kafka_python_still_leaks_the_client_of_a_failed_producer(failed_constructors):
    # the canary: when this fails, kafka-python closes what a failed constructor made and
    # construct.create() has nothing left to do (keep it anyway for older versions)
    result = failed_constructors["plain producer"]
    assert result["error"] == "KafkaTimeoutError"
    assert result["selectors"] > 0 and not result["idle"], result


class Client:
    def __init__(self, **configs: Any) -> None:
        self.configs = configs
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Failing:
    """A client class that makes its network client, then fails as a bootstrap would."""

    DEFAULT_CONFIG: dict[str, Any] = {"kafka_client": Client}
    made: list[Client] = []

    def __init__(self, **configs: Any) -> None:
        Failing.made.append(configs["kafka_client"](bootstrap_servers="b:9092"))
        raise TimeoutError("Unable to bootstrap")


def test_the_network_client_of_a_failed_constructor_is_closed():
    Failing.made = []
    with pytest.raises(TimeoutError, match="Unable to bootstrap"):
        create(Failing, bootstrap_servers="b:9092")
    assert [client.closed for client in Failing.made] == [True]
    assert Failing.made[0].configs == {"bootstrap_servers": "b:9092"}


def test_a_kafka_client_option_of_the_caller_is_what_gets_made():
    class Mine(Client):
        pass

    Failing.made = []
    with pytest.raises(TimeoutError):
        create(Failing, kafka_client=Mine)
    assert type(Failing.made[0]) is Mine and Failing.made[0].closed


def test_a_class_without_that_option_is_constructed_as_it_is():
    class Plain:
        def __init__(self, **configs: Any) -> None:
            self.configs = configs

    assert create(Plain, acks="all").configs == {"acks": "all"}
