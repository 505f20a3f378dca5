"""The librdkafka options check (ddc.kafka.rd_options) and the librdkafka sink's error sorting."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from ddc.egress.sinks.kafka_rd import RecordRejected, delivery_error, producer_config
from ddc.errors import ConfigError
from ddc.ingress.sources.kafka_rd import _codec, consumer_config
from ddc.kafka.rd_clients import BrokerError
from ddc.kafka.rd_options import RdOptions, flatten

SOURCE = {"bootstrap_servers": ["k1:9092", "k2:9092"], "group_id": "g", "options": {}}
SINK = {"bootstrap_servers": ["k:9092"], "buffer_max_records": 5, "compression_type": "zstd"}


def test_dotted_toml_keys_are_joined_again():
    assert flatten({"linger": {"ms": 5}, "acks": "all", "a": {"b": {"c": 1}}}) == {
        "linger.ms": 5,
        "acks": "all",
        "a.b.c": 1,
    }


def test_source_config_sets_what_ddc_owns_over_the_defaults():
    config = consumer_config({**SOURCE, "options": {"session": {"timeout": {"ms": 6000}}}})
    assert config == {
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "bootstrap.servers": "k1:9092,k2:9092",
        "group.id": "g",
        "enable.auto.commit": False,
    }


def test_sink_config_takes_compression_and_the_window():
    config = producer_config({**SINK, "options": {"linger.ms": 20}})
    assert config["compression.type"] == "zstd" and config["linger.ms"] == 20
    assert config["acks"] == "all" and config["queue.buffering.max.messages"] == 100_000


@pytest.mark.parametrize(
    ("options", "key", "why"),
    [
        ({"linger.ms": 5, "sesion.timeout.ms": 1}, "sesion.timeout.ms", "No such configuration"),
        ({"fetch.wait.max.ms": "x"}, "fetch.wait.max.ms", "Invalid value"),
        ({"linger.ms": 5}, "linger.ms", "producer property"),
        # valid alone, refused together with the default session.timeout.ms (45 s)
        ({"max.poll.interval.ms": 10000, "client.id": "x"}, "max.poll.interval.ms", ""),
        ({"group.id": "x"}, "group.id", "set by group_id"),
        ({"metadata.broker.list": "x:1"}, "metadata.broker.list", "set by bootstrap_servers"),
    ],
)
def test_a_refused_property_is_a_config_error_naming_the_key(options, key, why):
    with pytest.raises(ConfigError) as raised:
        consumer_config({**SOURCE, "options": options})
    assert raised.value.key == f"ingress.source.options.{key}"
    assert why in raised.value.problem


def test_a_consumer_property_in_the_sink_is_refused():
    with pytest.raises(ConfigError) as raised:
        producer_config({**SINK, "options": {"auto.offset.reset": "earliest"}})
    assert raised.value.key == "egress.sink.options.auto.offset.reset"
    assert "consumer property" in raised.value.problem


def test_two_conflicting_properties_name_the_first_without_which_the_rest_pass():
    options = RdOptions("consumer", "ingress.source.options", {})
    with pytest.raises(ConfigError) as raised:  # max.poll.interval.ms must be >= the session's
        options.check({"session.timeout.ms": 60000, "max.poll.interval.ms": 50000})
    assert raised.value.key == "ingress.source.options.max.poll.interval.ms"
    assert "session.timeout.ms" in raised.value.problem


def test_delivery_errors_about_the_record_are_rejections():
    assert isinstance(delivery_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), RecordRejected)
    assert isinstance(delivery_error(KafkaError(KafkaError.INVALID_RECORD)), RecordRejected)
    timed_out = delivery_error(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert isinstance(timed_out, BrokerError) and timed_out.name == "_MSG_TIMED_OUT"


def test_codec_named_by_a_decompression_error():
    assert _codec("_BAD_COMPRESSION: Decompression (codec 0x4) of message at 7 failed") == "zstd"
    assert _codec("_BAD_COMPRESSION: codec 0x9 unknown") == "unknown(0x9)"
    assert _codec("_BAD_MSG: CRC mismatch") == ""
