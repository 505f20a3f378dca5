"""The Kafka sink's compression_type: a validated key, the only way to set the codec."""

from __future__ import annotations

import pytest

from ddc.config import load_config
from ddc.egress.sinks.kafka import producer_options
from ddc.errors import ConfigError
from devtools.harness import toml_text


def load(tmp_path, extra: str) -> dict:
    """The egress config of a Kafka sink to topic "t", `extra` appended to [egress.sink]."""
    tables = {
        "egress": {},
        "egress.transport": {"listen": "127.0.0.1:7001"},
        "egress.sink": {"type": "kafka", "bootstrap_servers": "127.0.0.1:9092", "topic": "t"},
    }
    path = tmp_path / "egress.toml"
    path.write_text(toml_text(tables) + extra)
    return load_config(path, "egress", environ={})


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_codec_reaches_the_producer(tmp_path, codec):
    sink = load(tmp_path, f'compression_type = "{codec}"\n')["sink"]
    assert sink["compression_type"] == codec
    assert producer_options(sink)["compression_type"] == codec


def test_default_is_uncompressed(tmp_path):
    sink = load(tmp_path, "")["sink"]
    assert sink["compression_type"] == "none"
    assert producer_options(sink)["compression_type"] is None


def test_unknown_codec_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, 'compression_type = "brotli"\n')
    assert "egress.sink.compression_type" in str(caught.value)


def test_codec_in_the_options_table_points_at_the_key(tmp_path):
    sink = load(tmp_path, '[egress.sink.options]\ncompression_type = "gzip"\n')["sink"]
    with pytest.raises(ConfigError) as caught:
        producer_options(sink)
    assert "egress.sink.options.compression_type" in str(caught.value)
    assert "egress.sink.compression_type" in str(caught.value)
