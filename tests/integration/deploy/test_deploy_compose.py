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


# --- what only shows when the stacks run (issue 15); scripts/test-stacks runs them -----------


def services_of(name: str) -> dict:
    return yaml.safe_load(stack(name).read_text())["services"]


def is_ddc(service: dict) -> bool:
    return str(service.get("image", "")).startswith("${DDC_IMAGE")


def service_networks(service: dict) -> list[str]:
    networks = service.get("networks", ["default"])
    return list(networks) if isinstance(networks, (list, dict)) else []


@pytest.mark.parametrize("name", STACKS)
def test_a_published_port_is_on_a_network_that_can_publish(name):
    """A container only on `internal: true` networks publishes nothing (kafka-group's
    supervisor did: `curl 127.0.0.1:9190` failed)."""
    document = yaml.safe_load(stack(name).read_text())
    internal = {
        n for n, net in (document.get("networks") or {}).items() if (net or {}).get("internal")
    }
    for service_name, service in document["services"].items():
        if service.get("ports"):
            assert set(service_networks(service)) - internal, service_name


@pytest.mark.parametrize("name", STACKS)
def test_peers_wait_for_health_not_for_start(name):
    """A service that needs its peer ready waits for its health (the mirror's first records were
    lost on both links while the ingresses were still starting)."""
    services = services_of(name)
    for service_name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{service_name}: depends_on needs conditions"
        for peer, settings in depends.items():
            peer_has_health = "healthcheck" in services[peer] and not services[peer][
                "healthcheck"
            ].get("disable")
            expected = "service_healthy" if peer_has_health else "service_started"
            assert settings["condition"] == expected, (service_name, peer)
    if name == "redundant":
        assert set(services["mirror"]["depends_on"]) == {"ingress-a", "ingress-b"}


@pytest.mark.parametrize("name", STACKS)
def test_every_service_restarts_and_every_daemon_has_a_health_check(name):
    text = stack(name).read_text()
    assert "no-new-privileges:" not in text  # the deprecated separator (a warning per service)
    for service_name, service in services_of(name).items():
        expected = "always" if name == "cold-standby" else "unless-stopped"
        assert service.get("restart") == expected, service_name
        if is_ddc(service):
            assert service["security_opt"] == ["no-new-privileges=true"], service_name
            assert service["cap_drop"] == ["ALL"], service_name
            if service["healthcheck"].get("disable"):
                assert service_name == "mirror" and service.get("init") is True
                continue
            url = service["environment"]["DDC_HEALTHCHECK_URL"]
            assert "DDC_HEALTHCHECK_URL" in " ".join(service["healthcheck"]["test"])
            assert url.startswith("http://127.0.0.1:") and url.endswith(("/healthz", "/readyz"))


@pytest.mark.parametrize("name", STACKS)
def test_socket_buffer_limits_are_the_hosts_and_the_stack_says_so(name):
    """A non-root daemon cannot force its buffers past net.core.[rw]mem_max ('raise the sysctl'
    warnings in every container). Those limits are the host's: read-only inside a container's
    network namespace, so `sysctls:` for them stops the container from starting (runc: open
    /proc/sys/net/core/wmem_max: permission denied). The stacks point at the host setting."""
    text = stack(name).read_text()
    assert "net.core.rmem_max" in text.split("services:")[0]
    for service_name, service in services_of(name).items():
        sysctls = service.get("sysctls") or {}
        assert not {"net.core.rmem_max", "net.core.wmem_max"} & set(sysctls), service_name
    docs = (ROOT / "docs" / "deployment.md").read_text()
    assert "sysctl -w net.core.rmem_max=" in docs.split("### Socket buffers in containers")[1]


@pytest.mark.parametrize("name", STACKS)
def test_published_udp_ports_point_at_the_userland_proxy_note(name):
    """A UDP port published on the host goes through docker-proxy for local senders, which
    lost 69 of 20,000 datagrams at 20,000/s; the stacks say so where they publish one."""
    lines = stack(name).read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("- ") and "/udp" in line:
            context = " ".join(lines[max(0, number - 2) : number + 1])
            assert "userland proxy" in context, f"{name}.yml line {number + 1}"
    assert "## UDP and Docker's userland proxy" in (ROOT / "docs" / "deployment.md").read_text()


def test_cold_standby_ingress_comes_back_from_the_same_address():
    """After a crash the restarted ingress must be the sender the egress pinned, or the egress
    refuses it until heartbeat_timeout: a fixed source port and a fixed address."""
    from ddc.config import load_config

    config = load_config(
        ROOT / "compose" / "config" / "cold-standby" / "ingress.toml", "ingress", {}
    )
    assert config["transport"]["bind"][1] != 0
    document = yaml.safe_load(stack("cold-standby").read_text())
    address = document["services"]["ingress"]["networks"]["diode"]["ipv4_address"]
    (subnet,) = document["networks"]["diode"]["ipam"]["config"]
    import ipaddress

    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet["subnet"])
    comment = stack("cold-standby").read_text().split("\nx-ddc")[0]
    assert "docker kill ... ; it comes back" not in comment
    assert "kill -9" in comment and "manual stop" in comment
