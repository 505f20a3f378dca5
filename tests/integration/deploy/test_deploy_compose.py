"""The compose stacks: valid for Debian's docker-compose (1.29) and for `ddc topology check`.

`docker-compose config -q` needs no Docker engine; CI installs the binary (.ci/run).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools import ROOT
from devtools.harness import DDC, child_env

STACKS = ["single-pair", "multi-pair", "redundant", "kafka-group", "cold-standby"]
COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="docker-compose is not installed here (CI installs Debian's docker-compose in .ci/run)",
)


def stack(name: str) -> Path:
    return ROOT / "compose" / f"{name}.yml"


def ddc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DDC, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=child_env()
    )


@needs_compose
@pytest.mark.parametrize("name", STACKS)
def test_docker_compose_config_accepts_the_stack(name):
    result = subprocess.run(
        [COMPOSE, "-f", str(stack(name)), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@needs_compose
def test_docker_compose_config_refuses_a_broken_file(tmp_path):
    """The check above can fail: a service with an unknown key is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "services:\n  egress:\n    image: ddc:latest\n    restart_policy: sometimes\n"
    )
    result = subprocess.run(
        [COMPOSE, "-f", str(broken), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_topology_check_cli_accepts_every_stack():
    result = ddc("topology", "check", *(str(stack(name)) for name in STACKS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "topology check OK: 8 link pair(s), 8 ingress(es), 8 egress(es)" in result.stdout


def test_topology_check_cli_refuses_a_second_ingress_service_aimed_at_one_egress(tmp_path):
    """A copy of the redundant stack with one more ingress service using pair a's config."""
    document = yaml.safe_load(stack("redundant").read_text())
    extra = dict(document["services"]["ingress-a"])
    extra["environment"] = {"DDC__INGRESS__NAME": "pair-c"}
    document["services"]["ingress-c"] = extra
    for service in document["services"].values():
        service.pop("build", None)
        service["volumes"] = [
            v.replace("./config", str(ROOT / "compose" / "config"))
            for v in service.get("volumes", [])
        ]
    broken = tmp_path / "redundant-plus-one.yml"
    broken.write_text(yaml.safe_dump(document))
    if COMPOSE:  # compose itself has nothing against it
        assert (
            subprocess.run([COMPOSE, "-f", str(broken), "config", "-q"], timeout=60).returncode == 0
        )
    result = ddc("topology", "check", str(broken))
    assert result.returncode == 1, result.stdout + result.stderr
    section = result.stdout.split("[many-to-one]")[1]
    assert "redundant-plus-one.yml service 'egress-a'" in section
    assert "service 'ingress-a'" in section and "service 'ingress-c'" in section


def test_topology_check_cli_refuses_two_ingress_configs_with_one_egress_destination(tmp_path):
    config = ROOT / "compose" / "config" / "redundant"
    second = tmp_path / "ingress-copy.toml"
    second.write_text(
        (config / "ingress-a.toml").read_text().replace('name = "pair-a"', 'name = "copy"')
    )
    result = ddc(
        "topology",
        "check",
        str(config / "ingress-a.toml"),
        str(second),
        str(config / "egress-a.toml"),
    )
    assert result.returncode == 1
    section = result.stdout.split("[many-to-one]")[1]
    assert "compose/config/redundant/ingress-a.toml" in section and "ingress-copy.toml" in section
    assert "compose/config/redundant/egress-a.toml" in section


def test_topology_check_cli_exit_2_for_unreadable_input(tmp_path):
    result = ddc("topology", "check", str(tmp_path / "nope.yml"))
    assert result.returncode == 2 and "no such file" in result.stderr
    assert ddc("topology", "--help").returncode == 0


@pytest.mark.parametrize("name", STACKS)
def test_stack_conventions(name):
    text = stack(name).read_text()
    assert text.startswith("# "), "each stack states what it demonstrates in a top comment"
    services = yaml.safe_load(text)["services"]
    ddc_services = {
        n: s for n, s in services.items() if s.get("image", "").startswith("${DDC_IMAGE")
    }
    assert ddc_services
    for service_name, service in ddc_services.items():
        assert service.get("read_only") is True, service_name
        assert "/tmp" in service.get("tmpfs", []), service_name
        if name == "cold-standby":
            assert service.get("restart") == "always", service_name


def test_every_pair_has_its_own_port_across_all_stacks():
    from ddc.config import load_config

    ports: dict[int, Path] = {}
    for path in sorted((ROOT / "compose" / "config").rglob("egress*.toml")):
        port = load_config(path, "egress", {})["transport"]["listen"][1]
        assert port not in ports, f"{path} and {ports.get(port)} share port {port}"
        ports[port] = path
    assert len(ports) == 8
