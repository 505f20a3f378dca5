"""The socket-buffer warning's advice: outside a container the sysctl (or root); inside one the
host's sysctl and CAP_NET_ADMIN, the two things a non-root container cannot do for itself."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from ddc import netio


def test_plain_host_is_no_container(tmp_path: Path) -> None:
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/init.scope\n1:name=systemd:/init.scope\n")
    assert not netio.in_container(str(tmp_path), environ={})
    assert not netio.in_container(str(tmp_path / "missing"), environ={})


@pytest.mark.parametrize(
    "mark",
    [".dockerenv", "run/.containerenv"],
)
def test_runtime_marker_files(tmp_path: Path, mark: str) -> None:
    (tmp_path / mark).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / mark).write_text("")
    assert netio.in_container(str(tmp_path), environ={})


def test_cgroup_v1_names_the_runtime(tmp_path: Path) -> None:
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("12:memory:/kubepods/burstable/pod1/abc\n")
    assert netio.in_container(str(tmp_path), environ={})


def test_kubernetes_environment(tmp_path: Path) -> None:
    assert netio.in_container(str(tmp_path), environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert not netio.in_container(str(tmp_path), environ={"KUBERNETES_SERVICE_HOST": ""})


def test_advice_outside_and_inside() -> None:
    host = netio.buffer_advice("net.core.rmem_max", "SO_RCVBUFFORCE", container=False)
    assert host == "raise the sysctl net.core.rmem_max (or run as root)"
    inside = netio.buffer_advice("net.core.rmem_max", "SO_RCVBUFFORCE", container=True)
    assert "run as root" not in inside
    assert "net.core.rmem_max on the host" in inside
    assert "CAP_NET_ADMIN (SO_RCVBUFFORCE)" in inside


@pytest.mark.parametrize("container", [False, True])
def test_the_warning_a_daemon_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, container: bool
) -> None:
    monkeypatch.setattr(netio, "in_container", lambda: container)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with caplog.at_level(logging.WARNING, logger="ddc.netio"):
            # more than the kernel grants anyone (root's SO_RCVBUFFORCE stops at INT_MAX / 2)
            granted = netio.set_receive_buffer(sock, 2**31 - 1)
    finally:
        sock.close()
    assert granted < 2**31 - 1
    [record] = [r for r in caplog.records if r.name == "ddc.netio"]
    message = record.getMessage()
    assert message.startswith(f"socket buffer is {granted} bytes, {2**31 - 1} requested: ")
    assert message.endswith(netio.buffer_advice("net.core.rmem_max", "SO_RCVBUFFORCE", container))
