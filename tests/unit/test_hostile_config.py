"""Hostile or mistyped config: one ConfigError naming the key, before anything starts.

Every value reaches the daemon through the same loader (and, for what a config names on this
host, ddc.config.preflight), so each case goes through load_config / load_dedup_config.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddc.config import load_config, preflight
from ddc.errors import ConfigError
from dedup_service.config import LINK_NAME as DEDUP_LINK_NAME
from dedup_service.config import load_checked_dedup_config, load_dedup_config

INGRESS = {
    "ingress": {
        "source": {"type": "udp", "listen": "127.0.0.1:7000"},
        "transport": {"destination": "127.0.0.1:7001"},
    }
}
EGRESS = {
    "egress": {
        "transport": {"listen": "127.0.0.1:7001"},
        "sink": {"type": "udp", "target": "127.0.0.1:7002"},
    }
}
DEDUP = {"dedup": {"links": ["a", "b"], "sink": {"type": "udp", "target": "127.0.0.1:7002"}}}
DOCS = {"ingress": INGRESS, "egress": EGRESS, "dedup": DEDUP}


def toml_value(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def write(tmp_path: Path, role: str, key: str, value: object) -> Path:
    """The role's minimal config with `key` (dotted, from the role) set to `value`, as TOML."""
    import copy

    doc = copy.deepcopy(DOCS[role])
    *tables, name = key.split(".")
    table = doc[role]
    for part in tables:
        table = table.setdefault(part, {})
    table[name] = value
    lines: list[str] = []

    def emit(prefix: str, table: dict) -> None:
        lines.append(f"[{prefix}]")
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        for k, v in table.items():
            if not isinstance(v, dict):
                lines.append(f"{k} = {toml_value(v)}")
        for k, v in subtables.items():
            emit(f"{prefix}.{k}", v)

    emit(role, doc[role])
    path = tmp_path / f"{role}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(role: str, path: Path) -> dict:
    if role == "dedup":
        return load_dedup_config(path)
    return load_config(path, role, environ={})


INF, NAN = math.inf, math.nan
CASES = [
    ("ingress", "transport.rate", INF),
    ("ingress", "transport.rate", NAN),
    ("ingress", "transport.rate", 0),
    ("ingress", "transport.rate", 1e30),
    ("ingress", "transport.queue_bytes", INF),
    ("ingress", "transport.queue_bytes", NAN),
    ("ingress", "transport.queue_bytes", 0),
    ("ingress", "transport.heartbeat_interval", NAN),
    ("ingress", "transport.heartbeat_interval", INF),
    ("ingress", "transport.send_buffer", 1e30),
    ("ingress", "transport.send_buffer", 2**31),
    ("ingress", "transport.batch_max_bytes", INF),
    ("ingress", "transport.linger_ms", 1e30),
    ("ingress", "transport.send_delay_ms", 1e30),
    ("ingress", "transport.queue_size", 1e30),
    ("ingress", "source.receive_buffer", 1e30),
    ("ingress", "source.receive_buffer", "3GiB"),
    ("egress", "transport.max_chunk_size", INF),
    ("egress", "transport.max_chunk_size", NAN),
    ("egress", "transport.max_chunk_size", 0),
    ("egress", "transport.queue_bytes", INF),
    ("egress", "transport.heartbeat_timeout", NAN),
    ("egress", "transport.heartbeat_timeout", INF),
    ("egress", "transport.heartbeat_timeout", -1),
    ("egress", "transport.receive_buffer", 1e30),
    ("egress", "transport.receive_buffer", INF),
    ("egress", "sink.send_buffer", 1e300),
    ("dedup", "window", INF),
    ("dedup", "window", NAN),
    ("dedup", "window", "99999d"),
    ("dedup", "max_request_size", INF),
    ("dedup", "max_request_size", NAN),
    ("dedup", "max_request_size", 0),
]


@pytest.mark.parametrize(("role", "key", "value"), CASES)
def test_bad_value_is_one_config_error_naming_the_key(tmp_path, role, key, value):
    with pytest.raises(ConfigError) as caught:
        load(role, write(tmp_path, role, key, value))
    assert caught.value.key == f"{role}.{key}"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("role", "key", "value", "expected"),
    [
        ("ingress", "source.receive_buffer", "2047MiB", 2047 * 1024**2),
        ("ingress", "transport.rate", "10Gbit", 10e9),
        ("egress", "transport.heartbeat_timeout", "250ms", 0.25),
        ("dedup", "window", "30d", 30 * 86400.0),
    ],
)
def test_large_sane_values_still_load(tmp_path, role, key, value, expected):
    config = load(role, write(tmp_path, role, key, value))
    for part in key.split("."):
        config = config[part]
    assert config == expected


def test_dedup_sink_link_follows_the_dedup_services_rule(tmp_path):
    egress = {"type": "dedup", "url": "http://127.0.0.1:8080", "link": "a b/c"}
    path = write(tmp_path, "egress", "sink", egress)
    with pytest.raises(ConfigError) as caught:
        load("egress", path)
    assert caught.value.key == "egress.sink.link"
    from ddc.config.base import LINK_NAME

    assert LINK_NAME == DEDUP_LINK_NAME.pattern  # one rule on both sides of the API
    egress["link"] = "link-a.1"
    assert load("egress", write(tmp_path, "egress", "sink", egress))["sink"]["link"] == "link-a.1"


def test_tcp_pending_bound_must_hold_a_whole_record(tmp_path):
    source = {"type": "tcp", "listen": "127.0.0.1:7000", "max_record_size": "64MiB"}
    source["max_pending_bytes"] = "32MiB"
    with pytest.raises(ConfigError) as caught:
        load("ingress", write(tmp_path, "ingress", "source", source))
    assert caught.value.key == "ingress.source.max_pending_bytes"
    del source["max_pending_bytes"]
    config = load("ingress", write(tmp_path, "ingress", "source", source))
    assert config["source"]["max_pending_bytes"] == 256 * 1024**2


# --- checked on this host -----------------------------------------------------------------


def test_unresolvable_destination(tmp_path):
    path = write(tmp_path, "ingress", "transport.destination", "no-such-host.invalid:7001")
    with pytest.raises(ConfigError) as caught:
        preflight.load_ingress_config(path)
    assert caught.value.key == "ingress.transport.destination"
    assert "cannot resolve host 'no-such-host.invalid'" in str(caught.value)


@pytest.mark.parametrize("key", ["source.listen", "transport.bind", "http_listen"])
def test_ingress_address_not_of_this_host(tmp_path, key):
    path = write(tmp_path, "ingress", key, "192.0.2.1:7000")  # TEST-NET-1: never local
    with pytest.raises(ConfigError) as caught:
        preflight.load_ingress_config(path)
    assert caught.value.key == f"ingress.{key}"
    assert "192.0.2.1:7000 is not an address of this host" in str(caught.value)


def test_egress_listen_not_of_this_host_and_unresolvable_target(tmp_path):
    path = write(tmp_path, "egress", "transport.listen", "192.0.2.1:7001")
    with pytest.raises(ConfigError) as caught:
        preflight.load_egress_config(path)
    assert caught.value.key == "egress.transport.listen"
    sink = {"type": "tcp", "target": "no-such-host.invalid:9"}
    with pytest.raises(ConfigError) as caught:
        preflight.load_egress_config(write(tmp_path, "egress", "sink", sink))
    assert caught.value.key == "egress.sink.target"


def test_file_sink_directory_missing_or_not_writable(tmp_path):
    sink = {"type": "file", "path": str(tmp_path / "missing" / "out.bin")}
    with pytest.raises(ConfigError) as caught:
        preflight.load_egress_config(write(tmp_path, "egress", "sink", sink))
    assert caught.value.key == "egress.sink.path"
    assert "does not exist" in str(caught.value)
    sink["path"] = str(tmp_path)  # a directory
    with pytest.raises(ConfigError):
        preflight.load_egress_config(write(tmp_path, "egress", "sink", sink))
    sink["path"] = str(tmp_path / "out.bin")
    assert preflight.load_egress_config(write(tmp_path, "egress", "sink", sink))
    assert not (tmp_path / "out.bin").exists()  # checked, not created


def test_dedup_data_dir_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = write(tmp_path, "dedup", "data_dir", str(blocker / "data"))
    with pytest.raises(ConfigError) as caught:
        load_checked_dedup_config(path)
    assert caught.value.key == "dedup.data_dir"
    if os.geteuid() != 0:  # root writes anywhere: only the not-a-directory case applies
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ConfigError):
            load_checked_dedup_config(write(tmp_path, "dedup", "data_dir", str(locked / "d")))
    good = write(tmp_path, "dedup", "data_dir", str(tmp_path / "new" / "data"))
    assert load_checked_dedup_config(good)["data_dir"] == str(tmp_path / "new" / "data")


# --- the commands: exit 2, one line, nothing started ---------------------------------------


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    ("role", "key", "value"),
    [
        ("ingress", "transport.rate", INF),
        ("ingress", "transport.destination", "no-such-host.invalid:7001"),
        ("egress", "transport.heartbeat_timeout", NAN),
        ("egress", "transport.listen", "192.0.2.1:7001"),
        ("egress", "sink", {"type": "dedup", "url": "http://127.0.0.1:9", "link": "a b/c"}),
        ("dedup", "data_dir", "/dev/null/data"),
    ],
)
def test_command_exits_2_with_one_line(tmp_path, role, key, value):
    path = write(tmp_path, role, key, value)
    if role == "dedup":
        argv = [sys.executable, "-m", "dedup_service.cli", "serve", "-c", str(path)]
    else:
        argv = [sys.executable, "-m", "ddc.cli", role, "-c", str(path)]
    done = run(argv)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    wanted = f"{role}.{key}" if key != "sink" else "egress.sink.link"
    assert len(lines) == 1 and lines[0].startswith(f"config error: {wanted}: "), done.stderr
    assert done.stdout == ""
