"""The supervisor config: defaults, validation naming the key, env overrides, CLI exit 2."""

import subprocess
import sys

import pytest

from ddc.errors import ConfigError
from ddc.supervisor.config import load_supervisor_config

VALID = """
[supervisor]
http_listen = "127.0.0.1:0"
grace = "3s"

[[supervisor.pairs]]
name = "a"
ingress = "http://10.0.0.1:9101/"
egress = "http://10.1.0.1:9102"
on_pause = "logger paused"
"""
SECOND_A = """
[[supervisor.pairs]]
name = "a"
ingress = "http://10.0.0.2:9101"
egress = "http://10.1.0.2:9102"
"""


def write(tmp_path, text):
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return path


def test_defaults_and_values(tmp_path):
    config = load_supervisor_config(write(tmp_path, VALID), {})
    assert config["grace"] == 3.0
    assert config["poll_interval"] == 1.0
    assert config["timeout"] == 2.0
    pair = config["pairs"][0]
    assert pair["ingress"] == "http://10.0.0.1:9101"  # trailing slash dropped
    assert pair["on_pause"] == "logger paused" and pair["on_resume"] is None


def test_env_override(tmp_path):
    config = load_supervisor_config(write(tmp_path, VALID), {"DDC__SUPERVISOR__GRACE": "250ms"})
    assert config["grace"] == 0.25


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (VALID.replace('grace = "3s"', 'grace = "soon"'), "supervisor.grace", "invalid duration"),
        (VALID.replace('grace = "3s"', "graze = 3"), "supervisor.graze", "unknown key"),
        (
            VALID.replace("http://10.1.0.1:9102", "10.1.0.1:9102"),
            "supervisor.pairs.0.egress",
            "URL",
        ),
        (
            VALID.replace('on_pause = "logger paused"', "on_stop = 'x'"),
            "supervisor.pairs.0.on_stop",
            "unknown key",
        ),
        ("[supervisor]\n", "supervisor.pairs", "required"),
        (VALID + SECOND_A, "supervisor.pairs", "used twice"),
    ],
)
def test_invalid_names_the_key(tmp_path, text, key, problem):
    with pytest.raises(ConfigError) as info:
        load_supervisor_config(write(tmp_path, text), {})
    assert info.value.key == key
    assert problem.lower() in info.value.problem.lower()


def test_same_egress_watched_twice_is_refused(tmp_path):
    text = (
        VALID
        + '\n[[supervisor.pairs]]\nname = "b"\ningress = "http://10.0.0.2:9101"\negress = "http://10.1.0.1:9102"\n'
    )
    with pytest.raises(ConfigError, match="watched twice"):
        load_supervisor_config(write(tmp_path, text), {})


def test_cli_invalid_config_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, VALID.replace('grace = "3s"', "graze = 3"))
    result = subprocess.run(
        [sys.executable, "-m", "ddc.cli", "supervise", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["config error: supervisor.graze: unknown key"]


def test_token_files_resolve_against_the_config_file(tmp_path):
    text = VALID.replace("[supervisor]\n", '[supervisor]\ntoken_file = "admin.token"\n', 1)
    config = load_supervisor_config(write(tmp_path, text), {})
    assert config["token_file"] == str(tmp_path / "admin.token")
    assert all(pair["token_file"] is None for pair in config["pairs"])
