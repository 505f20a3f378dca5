import pytest

from ddc.errors import ConfigError
from dedup_service.config import load_dedup_config
from dedup_service.keys import IdSpec

SINK = {"type": "file", "path": "out.bin"}


def load(dedup, environ=None):
    """[dedup] with links a and b declared unless `dedup` says otherwise."""
    dedup = {"links": ["a", "b"], **dedup}
    return load_dedup_config(None, environ or {}, document={"dedup": dedup})


def test_defaults():
    config = load({"sink": SINK})
    assert config["http_listen"] == ("127.0.0.1", 8080)
    assert config["redis_url"] is None
    assert config["window"] == 86400.0
    assert config["divergence_window"] == 60.0
    assert config["id_from"] == IdSpec("id")
    assert config["merge"] is None
    assert config["sink"]["framing"] == "length_prefixed"


def test_units_and_env_override():
    config = load(
        {"window": "2h", "id_from": "json:a.b", "sink": SINK},
        {"DDC__DEDUP__DIVERGENCE_WINDOW": '"5s"', "DDC__SINK__FSYNC": "true"},
    )
    assert config["window"] == 7200.0
    assert config["divergence_window"] == 5.0
    assert config["id_from"] == IdSpec("json", path=("a", "b"))
    assert config["sink"]["fsync"] is True


@pytest.mark.parametrize(
    "dedup, key, problem",
    [
        ({}, "dedup.sink", "Missing data"),
        (
            {"sink": {"type": "smoke"}},
            "dedup.sink.type",
            "must be one of file | http | kafka | tcp | udp",
        ),
        ({"sink": SINK, "window": "0s"}, "dedup.window", "must be greater than 0"),
        ({"sink": SINK, "window": "soon"}, "dedup.window", "invalid duration"),
        ({"sink": SINK, "id_from": "nope"}, "dedup.id_from", "invalid id_from"),
        ({"sink": SINK, "colour": "blue"}, "dedup.colour", "unknown key"),
        ({"sink": SINK, "redis_url": "http://x"}, "dedup.redis_url", "String does not match"),
        ({"sink": {"type": "kafka", "topic": "t"}}, "dedup.sink.bootstrap_servers", "Missing"),
        ({"sink": {"type": "udp", "target": "nohost"}}, "dedup.sink.target", "HOST:PORT"),
        ({"sink": {"type": "http", "url": "ftp://x"}}, "dedup.sink.url", "Not a valid URL"),
        (
            {"sink": SINK, "merge": {"bootstrap_servers": "h:1", "links": {}}},
            "dedup.merge.links",
            "at least one link",
        ),
        (
            {"sink": SINK, "merge": {"bootstrap_servers": "h:1", "links": {"a": "t", "b": "t"}}},
            "dedup.merge.links",
            "its own input topic",
        ),
        (
            {"sink": SINK, "merge": {"bootstrap_servers": "h:1", "links": {"a b": "t"}}},
            "dedup.merge.links",
            "link names are",
        ),
        (
            {"sink": SINK, "merge": {"links": {"a": "t"}}},
            "dedup.merge.bootstrap_servers",
            "Missing",
        ),
        ({"sink": SINK, "links": None}, "dedup.links", "Field may not be null"),
        ({"sink": SINK, "links": []}, "dedup.links", "Length must be between 1 and 31"),
        (
            {"sink": SINK, "links": [f"l{i}" for i in range(32)]},
            "dedup.links",
            "Length must be between 1 and 31",
        ),
        ({"sink": SINK, "links": ["a", "a"]}, "dedup.links", "declared twice"),
        ({"sink": SINK, "links": ["a", "-x"]}, "dedup.links.1", "link names are"),
        (
            {"sink": SINK, "merge": {"bootstrap_servers": "h:1", "links": {"a": "t", "c": "u"}}},
            "dedup.merge",
            "merge link 'c' is not declared in [dedup] links",
        ),
    ],
)
def test_invalid_config_names_the_key(dedup, key, problem):
    with pytest.raises(ConfigError) as caught:
        load(dedup)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_links_must_be_declared():
    with pytest.raises(ConfigError) as caught:
        load_dedup_config(None, {}, document={"dedup": {"sink": SINK}})
    assert caught.value.key == "dedup.links" and "Missing" in caught.value.problem


def test_token_file_resolves_from_the_config_file(tmp_path):
    path = tmp_path / "dedup.toml"
    path.write_text(
        '[dedup]\nlinks = ["a"]\napi_token_file = "api.token"\n'
        '[dedup.sink]\ntype = "file"\npath = "o.bin"\n'
    )
    assert load_dedup_config(path, {})["api_token_file"] == str(tmp_path / "api.token")


def test_other_top_level_table_rejected():
    with pytest.raises(ConfigError, match="unknown top-level table"):
        load_dedup_config(None, {}, document={"dedup": {"sink": SINK}, "egress": {}})


def test_relative_paths_resolve_from_the_config_file(tmp_path):
    path = tmp_path / "dedup.toml"
    path.write_text(
        '[dedup]\nlinks = ["a"]\ndata_dir = "state"\n[dedup.sink]\ntype = "file"\npath = "out/x.bin"\n'
    )
    config = load_dedup_config(path, {})
    assert config["data_dir"] == str(tmp_path / "state")
    assert config["sink"]["path"] == str(tmp_path / "out" / "x.bin")


@pytest.mark.parametrize(
    "sink, problem",
    [
        ({"type": "http", "url": "http://t:1/x", "timeout": "31s"}, "timeout (31s)"),
        ({"type": "tcp", "target": "127.0.0.1:9", "timeout": "40s"}, "timeout (40s)"),
        (
            {
                "type": "kafka",
                "bootstrap_servers": "k:9092",
                "topic": "t",
                "timeout": "20s",
                "options": {"delivery_timeout_ms": 120000},
            },
            "options.delivery_timeout_ms (120s)",
        ),
    ],
)
def test_a_sink_slower_than_pending_timeout_is_refused(sink, problem):
    with pytest.raises(ConfigError) as error:
        load({"sink": sink})
    assert error.value.key == "dedup.sink"
    assert problem in error.value.problem and "pending_timeout (30s)" in error.value.problem


def test_the_default_sinks_fit_the_default_pending_timeout():
    kafka = {"type": "kafka", "bootstrap_servers": "k:9092", "topic": "t"}
    assert load({"sink": kafka})["sink"]["timeout"] == 30.0


def test_file_sink_ids_need_length_prefixed_frames():
    assert load({"sink": {**SINK, "write_ids": True}})["sink"]["write_ids"] is True
    with pytest.raises(ConfigError) as error:
        load({"sink": {**SINK, "framing": "lines", "write_ids": True}})
    assert error.value.key == "dedup.sink.write_ids"
    assert "length_prefixed" in error.value.problem


RD_SINK = {"type": "kafka", "bootstrap_servers": "k:9092", "topic": "t", "client": "librdkafka"}


def test_the_kafka_sink_client_defaults_to_kafka_python():
    kafka = {"type": "kafka", "bootstrap_servers": "k:9092", "topic": "t"}
    assert load({"sink": kafka})["sink"]["client"] == "kafka-python"
    with pytest.raises(ConfigError) as error:
        load({"sink": {**kafka, "client": "librdkafka2"}})
    assert error.value.key == "dedup.sink.client"


def test_a_librdkafka_sink_is_idempotent_with_acks_all_and_the_timeout():
    from dedup_service.sinks.kafka_rd import sink_rd_config

    sink = load({"sink": {**RD_SINK, "timeout": "12s", "options": {"linger": {"ms": 20}}}})["sink"]
    config = sink_rd_config(sink)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["message.timeout.ms"] == 12000
    assert config["linger.ms"] == 20  # a dotted TOML key, joined again
    assert config["bootstrap.servers"] == "k:9092"


@pytest.mark.parametrize(
    "options, key, problem",
    [
        ({"enable.idempotence": False}, "dedup.sink.options.enable.idempotence", "not allowed"),
        ({"bootstrap.servers": "x:1"}, "dedup.sink.options.bootstrap.servers", "not allowed"),
        ({"no.such.property": 1}, "dedup.sink.options.no.such.property", "librdkafka"),
        ({"group.id": "g"}, "dedup.sink.options.group.id", "consumer property"),
    ],
)
def test_a_librdkafka_sink_refuses_bad_options(options, key, problem):
    with pytest.raises(ConfigError) as error:
        load({"sink": {**RD_SINK, "options": options}})
    assert error.value.key == key
    assert problem in error.value.problem


@pytest.mark.parametrize("name", ["message.timeout.ms", "delivery.timeout.ms"])
def test_a_librdkafka_delivery_timeout_past_pending_timeout_is_refused(name):
    with pytest.raises(ConfigError) as error:
        load({"sink": {**RD_SINK, "timeout": "10s", "options": {name: 45000}}})
    assert error.value.key == "dedup.sink"
    assert "options.message.timeout.ms (45s)" in error.value.problem
