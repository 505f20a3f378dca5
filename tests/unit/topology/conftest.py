"""Fixtures: small ddc configs, and `ddc topology check` run in-process."""

import argparse

import pytest

from ddc.topology.cli import configure_parser, run


def _ingress_toml(destination, name="i", source_port=7000, http="0.0.0.0:9101"):
    return f"""
[ingress]
name = "{name}"
http_listen = "{http}"
[ingress.source]
type = "udp"
listen = "0.0.0.0:{source_port}"
[ingress.transport]
destination = "{destination}"
"""


def _egress_toml(listen, name="e", http="0.0.0.0:9102"):
    return f"""
[egress]
name = "{name}"
http_listen = "{http}"
[egress.transport]
listen = "{listen}"
[egress.sink]
type = "udp"
target = "127.0.0.1:9999"
"""


@pytest.fixture
def ingress_toml():
    return _ingress_toml


@pytest.fixture
def egress_toml():
    return _egress_toml


@pytest.fixture
def check(capsys):
    """check(*files) -> (exit code, stdout, stderr)"""

    def run_check(*files):
        parser = argparse.ArgumentParser()
        configure_parser(parser)
        code = run(parser.parse_args(["check", *map(str, files)]))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run_check


@pytest.fixture
def write(tmp_path):
    """write(relative name, text) -> path under tmp_path"""

    def write_file(name, text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write_file
