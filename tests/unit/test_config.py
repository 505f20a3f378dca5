"""Config loading: defaults, env overrides, and one clear line per invalid key (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ddc.config import load_config, parse_env_value
from ddc.errors import ConfigError

INGRESS = """
[ingress]
name = "a"
[ingress.source]
type = "udp"
listen = "127.0.0.1:7000"
[ingress.transport]
destination = "127.0.0.1:7001"
rate = "800Mbit"
"""

EGRESS = """
[egress]
[egress.transport]
listen = "127.0.0.1:7001"
receive_buffer = "32MiB"
[egress.sink]
type = "udp"
target = "127.0.0.1:7002"
"""


def run_ddc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ddc.cli", *args], capture_output=True, text=True, timeout=60
    )


def write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ingress_defaults_and_units(tmp_path):
    config = load_config(write(tmp_path, INGRESS), "ingress", environ={})
    transport = config["transport"]
    assert transport["destination"] == ("127.0.0.1", 7001)
    assert transport["rate"] == 800e6
    assert transport["max_packet_size"] == 65507
    assert transport["heartbeat_interval"] == 1.0
    assert transport["envelope"] == "raw"  # decided by the source type: records for Kafka
    assert config["filters"] == []
    kafka = INGRESS.replace(
        'type = "udp"\nlisten = "127.0.0.1:7000"',
        'type = "kafka"\nbootstrap_servers = "127.0.0.1:9092"\ntopics = ["t"]\ngroup_id = "g"',
    )
    config = load_config(write(tmp_path, kafka), "ingress", environ={})
    assert config["transport"]["envelope"] == "records"
    explicit = INGRESS.replace('rate = "800Mbit"', 'envelope = "raw"')
    kafka_raw = explicit.replace(
        'type = "udp"\nlisten = "127.0.0.1:7000"',
        'type = "kafka"\nbootstrap_servers = "127.0.0.1:9092"\ntopics = ["t"]\ngroup_id = "g"',
    )
    assert (
        load_config(write(tmp_path, kafka_raw), "ingress", environ={})["transport"]["envelope"]
        == "raw"
    )


def test_relative_paths_resolve_against_the_config_files_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    egress = EGRESS.replace(
        'type = "udp"\ntarget = "127.0.0.1:7002"', 'type = "file"\npath = "out/x.bin"'
    )
    config = load_config(write(tmp_path / "conf", egress), "egress", environ={})
    assert config["sink"]["path"] == str(tmp_path / "conf" / "out" / "x.bin")
    ingress = INGRESS + '[[ingress.filters]]\ntype = "json_schema"\nschema = "s.json"\n'
    config = load_config(write(tmp_path / "conf", ingress), "ingress", environ={})
    assert config["filters"][0]["schema"] == str(tmp_path / "conf" / "s.json")
    absolute = egress.replace('"out/x.bin"', '"/var/lib/x.bin"')
    config = load_config(write(tmp_path / "conf", absolute), "egress", environ={})
    assert config["sink"]["path"] == "/var/lib/x.bin"


def test_egress_sizes(tmp_path):
    config = load_config(write(tmp_path, EGRESS), "egress", environ={})
    assert config["transport"]["receive_buffer"] == 32 * 1024 * 1024
    assert config["transport"]["max_chunk_size"] == 64 * 1024 * 1024
    assert config["sink"]["target"] == ("127.0.0.1", 7002)


def test_env_overrides_section_keys_and_role_keys(tmp_path):
    env = {
        "DDC__TRANSPORT__DESTINATION": "10.0.0.5:9000",
        "DDC__TRANSPORT__HEARTBEAT_INTERVAL": "0.25",
        "DDC__INGRESS__NAME": "from-env",
        "DDC__SOURCE__LISTEN": "0.0.0.0:7100",
        "OTHER": "ignored",
    }
    config = load_config(write(tmp_path, INGRESS), "ingress", environ=env)
    assert config["transport"]["destination"] == ("10.0.0.5", 9000)
    assert config["transport"]["heartbeat_interval"] == 0.25
    assert config["name"] == "from-env"
    assert config["source"]["listen"] == ("0.0.0.0", 7100)


def test_env_override_of_sink_target(tmp_path):
    config = load_config(
        write(tmp_path, EGRESS), "egress", environ={"DDC__SINK__TARGET": "127.0.0.1:9"}
    )
    assert config["sink"]["target"] == ("127.0.0.1", 9)


def test_env_values_parse_as_toml_literals_else_strings():
    assert parse_env_value("3") == 3
    assert parse_env_value("true") is True
    assert parse_env_value('["a", "b"]') == ["a", "b"]
    assert parse_env_value("127.0.0.1:7000") == "127.0.0.1:7000"
    assert parse_env_value("800Mbit") == "800Mbit"


@pytest.mark.parametrize(
    "mutation, key, problem",
    [
        (('rate = "800Mbit"', 'rate = "fast"'), "ingress.transport.rate", "invalid rate"),
        (('type = "udp"', 'type = "pigeon"'), "ingress.source.type", "must be one of"),
        (('rate = "800Mbit"', "colour = 1"), "ingress.transport.colour", "unknown key"),
        (
            ('destination = "127.0.0.1:7001"', 'destination = "nowhere"'),
            "ingress.transport.destination",
            "HOST:PORT",
        ),
        (
            ('rate = "800Mbit"', "max_packet_size = 70000"),
            "ingress.transport.max_packet_size",
            "less than or equal",
        ),
        (
            ('rate = "800Mbit"', 'rate = "1Mbit"\nsend_delay_ms = 1'),
            "ingress.transport.send_delay_ms",
            "not both",
        ),
    ],
)
def test_invalid_values_name_the_key(tmp_path, mutation, key, problem):
    path = write(tmp_path, INGRESS.replace(*mutation))
    with pytest.raises(ConfigError) as info:
        load_config(path, "ingress", environ={})
    assert info.value.key == key
    assert problem in info.value.problem


def test_fec_defaults_are_off(tmp_path):
    transport = load_config(write(tmp_path, INGRESS), "ingress", environ={})["transport"]
    assert (transport["fec_data"], transport["fec_parity"]) == (0, 0)
    assert transport["fec_linger_ms"] == 5.0 and transport["fec_interleave"] == 1


@pytest.mark.parametrize(
    "keys, key, problem",
    [
        ("fec_data = 256\nfec_parity = 1", "fec_data", "less than or equal to 255"),
        ("fec_data = -1", "fec_data", "greater than or equal to 0"),
        ("fec_parity = 8", "fec_parity", "needs fec_data > 0"),
        ("fec_data = 200\nfec_parity = 57", "fec_parity", "<= 256, got 257"),
        (
            "fec_data = 32\nfec_parity = 8\nfec_interleave = 0",
            "fec_interleave",
            "less than or equal to 255",
        ),
        (
            "fec_data = 32\nfec_parity = 8\nfec_interleave = 256",
            "fec_interleave",
            "less than or equal to 255",
        ),
        ("fec_linger_ms = -1", "fec_linger_ms", "greater than or equal"),
        ("fec_linger_ms = 51", "fec_linger_ms", "less than or equal to 50"),
        ("fec_data = 4\nfec_parity = 1\nmax_packet_size = 70", "max_packet_size", ">= 79"),
    ],
)
def test_invalid_fec_settings_name_the_key(tmp_path, keys, key, problem):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, INGRESS + keys + "\n"), "ingress", environ={})
    assert info.value.key == f"ingress.transport.{key}"
    assert problem in info.value.problem


def test_fec_settings_load(tmp_path):
    text = INGRESS + "fec_data = 32\nfec_parity = 8\nfec_interleave = 4\nmax_packet_size = 1472\n"
    transport = load_config(write(tmp_path, text), "ingress", environ={})["transport"]
    assert (transport["fec_data"], transport["fec_parity"], transport["fec_interleave"]) == (
        32,
        8,
        4,
    )


def test_missing_table_and_wrong_role(tmp_path):
    with pytest.raises(ConfigError, match="ingress.transport: Missing data"):
        load_config(write(tmp_path, INGRESS.split("[ingress.transport]")[0]), "ingress", environ={})
    with pytest.raises(ConfigError, match="egress: unknown top-level table"):
        load_config(write(tmp_path, EGRESS), "ingress", environ={})


def test_cli_invalid_config_prints_one_line_and_exits_2(tmp_path):
    path = write(tmp_path, INGRESS.replace('rate = "800Mbit"', 'rate = "fast"'))
    result = run_ddc("ingress", "-c", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "config error: ingress.transport.rate: invalid rate 'fast' (expected e.g. '800Mbit')"
    ]


def test_cli_missing_file_exits_2(tmp_path):
    result = run_ddc("egress", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr


@pytest.mark.parametrize("command", ["ingress", "egress", "diode-sim", "topology", "supervise"])
def test_every_command_has_help(command):
    result = run_ddc(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: ddc" in result.stdout


def test_admin_token_file_resolves_against_the_config_file(tmp_path):
    text = INGRESS.replace('name = "a"\n', 'name = "a"\nadmin_token_file = "secrets/admin"\n')
    config = load_config(write(tmp_path, text), "ingress", environ={})
    assert config["admin_token_file"] == str(tmp_path / "secrets" / "admin")
    assert load_config(write(tmp_path, INGRESS), "ingress", environ={})["admin_token_file"] is None


def test_reference_peer_defaults_and_limits(tmp_path):
    egress = EGRESS.replace('receive_buffer = "32MiB"', 'peer = "reference"')
    kafka_sink = egress.replace(
        'type = "udp"\ntarget = "127.0.0.1:7002"',
        'type = "kafka"\nbootstrap_servers = "127.0.0.1:9092"\ntopic = "t"',
    )
    config = load_config(write(tmp_path, kafka_sink), "egress", environ={})
    assert config["transport"]["heartbeat_timeout"] == 0.0  # no alarm: it sends no HeartBeats
    assert config["transport"]["envelope"] == "raw"
    assert (
        load_config(write(tmp_path, EGRESS), "egress", environ={})["transport"]["heartbeat_timeout"]
        == 5.0
    )
    ingress = INGRESS.replace('rate = "800Mbit"', 'peer = "reference"')
    assert load_config(write(tmp_path, ingress), "ingress", environ={})["transport"]["peer"] == (
        "reference"
    )
    refused = [
        (ingress + "max_packet_size = 1472\n", "ingress", "ingress.transport.max_packet_size"),
        (ingress + "fec_data = 32\n", "ingress", "ingress.transport.fec_data"),
        (
            egress.replace("[egress.sink]", "heartbeat_timeout = 5\n[egress.sink]"),
            "egress",
            "egress.transport.heartbeat_timeout",
        ),
        (
            egress.replace("[egress.sink]", 'envelope = "records"\n[egress.sink]'),
            "egress",
            "egress.transport.envelope",
        ),
        (
            EGRESS.replace("[egress.sink]", "heartbeat_timeout = 0\n[egress.sink]"),
            "egress",
            "egress.transport.heartbeat_timeout",
        ),
    ]
    for text, role, key in refused:
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, text), role, environ={})
        assert caught.value.key == key, text
