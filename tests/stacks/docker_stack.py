"""A compose stack under test: docker-compose and docker CLI calls, container facts, traffic
helpers. Used by run_stacks.py (scripts/test-stacks starts the engine and builds the images)."""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from ddc.protocol.auth_keys import new_key_line
from devtools.harness import parse_metrics, wait_until

ROOT = Path(__file__).resolve().parents[2]
WORLD_READABLE_SECRETS = ("redis_password",)  # see the comment at the end of compose/redundant.yml
FETCH = (
    "import sys, urllib.request; "
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
)

ROOT_PROBE = (
    "import os\n"
    "try:\n"
    "    open('/probe', 'w')\n"
    "except OSError as error:\n"
    "    print(os.getuid(), error.errno)\n"
    "else:\n"
    "    print(os.getuid(), 'writable')"
)
# a POST without credentials from inside a container: prints the HTTP status
POST_STATUS = (
    "import sys, urllib.error, urllib.request\n"
    "try:\n"
    "    status = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'{}', "
    "headers={'Content-Type': 'application/json'}), timeout=5).status\n"
    "except urllib.error.HTTPError as error:\n"
    "    status = error.code\n"
    "print(status)"
)


class StackError(AssertionError):
    pass


class DockerStack:
    def __init__(self, name: str, docker: str = "docker") -> None:
        self.name = name
        self.docker = docker
        self.project = f"ddcst{name.replace('-', '')}"
        self.file = ROOT / "compose" / f"{name}.yml"
        self.started = time.monotonic()
        self.made_secrets: list[Path] = []
        # service → container id: a restart keeps the container, `up` and `down` may not
        self.ids: dict[str, str] = {}

    def phase(self, what: str) -> None:
        print(f"  {self.name}: {what} at {time.monotonic() - self.started:.1f} s", flush=True)

    # --- commands ---------------------------------------------------------------------------
    def run(self, *argv: str, timeout: float = 300, check: bool = True) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise StackError(f"{' '.join(argv)}: exit {result.returncode}\n{result.stderr[-3000:]}")
        return result.stdout

    def compose(self, *args: str, timeout: float = 300) -> str:
        return self.run(
            "docker-compose", "-p", self.project, "-f", str(self.file), *args, timeout=timeout
        )

    def up(self, *services: str) -> None:
        self.make_secrets()
        self.ids.clear()
        self.compose("up", "-d", "--no-build", *services)

    def down(self) -> None:
        self.ids.clear()
        try:
            self.compose("down", "-v", "--remove-orphans", "-t", "5")
        finally:
            for path in self.made_secrets:
                path.unlink(missing_ok=True)
            self.made_secrets.clear()

    def secret_files(self) -> dict[str, Path]:
        """The stack's Docker secrets (top-level `secrets:`), name → file on the host."""
        declared = yaml.safe_load(self.file.read_text()).get("secrets") or {}
        return {
            name: (self.file.parent / spec["file"]).resolve() for name, spec in declared.items()
        }

    def make_secrets(self) -> None:
        """Each missing secret file made as the stack's comment says (a token or a key, owned by the
        containers' uid 10001, mode 600); files already there are the operator's, kept as they are.
        down() removes the ones made here."""
        for name, path in self.secret_files().items():
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            # a key file (`ddc keygen`) for *_keys, a token otherwise
            line = new_key_line(1) if name.endswith("_keys") else secrets.token_urlsafe(32)
            path.write_text(line + "\n")
            os.chown(path, 10001, -1)
            # redis_password is read by the redis image's own user as well (the directory keeps
            # every other host user out)
            path.chmod(0o644 if name in WORLD_READABLE_SECRETS else 0o600)
            self.made_secrets.append(path)

    def secret(self, name: str) -> str:
        return self.secret_files()[name].read_text().strip()

    def container(self, service: str) -> str:
        if service not in self.ids:
            ident = self.compose("ps", "-q", service).strip()
            if not ident:
                raise StackError(f"{self.name}: no container for {service}")
            self.ids[service] = ident
        return self.ids[service]

    def inspect(self, service: str) -> dict[str, Any]:
        return json.loads(self.run(self.docker, "inspect", self.container(service)))[0]

    def ip(self, service: str, network: str) -> str:
        networks = self.inspect(service)["NetworkSettings"]["Networks"]
        return str(networks[f"{self.project}_{network}"]["IPAddress"])

    def exec(self, service: str, *argv: str, check: bool = True) -> str:
        return self.run(self.docker, "exec", self.container(service), *argv, check=check)

    def volume_file(self, service: str, path: str) -> bytes:
        """A file of a volume mounted in the service, read on the host (no docker exec)."""
        for mount in self.inspect(service)["Mounts"]:
            destination = mount["Destination"].rstrip("/") + "/"
            if path.startswith(destination):
                host = Path(mount["Source"]) / path[len(destination) :]
                return host.read_bytes() if host.exists() else b""
        raise StackError(f"{self.name}/{service}: no volume holds {path}")

    def exec_bytes(self, service: str, *argv: str) -> bytes:
        return subprocess.run(
            [self.docker, "exec", self.container(service), *argv],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout

    def logs(self, service: str) -> str:
        result = subprocess.run(
            [self.docker, "logs", self.container(service)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout + result.stderr

    def metrics(self, service: str, port: int) -> dict[str, float]:
        return parse_metrics(
            self.exec(service, "python", "-c", FETCH, f"http://127.0.0.1:{port}/metrics")
        )

    def healthz(self, service: str, port: int) -> dict[str, Any]:
        body = self.exec(service, "python", "-c", FETCH, f"http://127.0.0.1:{port}/healthz")
        return dict(json.loads(body))

    def post_status(self, service: str, url: str) -> int:
        """The status a POST without a token gets from `url`, sent inside the service."""
        return int(self.exec(service, "python", "-c", POST_STATUS, url).strip())

    def helper(self, network: str, *argv: str, timeout: float = 180) -> str:
        """A throwaway ddc container on one of the stack's networks, tests/stacks mounted."""
        return self.run(
            self.docker,
            "run",
            "--rm",
            "--init",
            "--network",
            f"{self.project}_{network}",
            "-v",
            f"{ROOT / 'tests' / 'stacks'}:/stacks:ro",
            "ddc:latest",
            "python",
            *argv,
            timeout=timeout,
        )

    def kafka(self, network: str, *args: str, timeout: float = 180) -> str:
        return self.helper(network, "/stacks/kafka_io.py", *args, timeout=timeout)

    # --- facts ------------------------------------------------------------------------------
    def ddc_services(self) -> list[str]:
        services = yaml.safe_load(self.file.read_text())["services"]
        return [n for n, s in services.items() if str(s.get("image", "")).startswith("${DDC")]

    def health(self, service: str) -> str:
        state = self.inspect(service)["State"]
        return str(state.get("Health", {}).get("Status", "none"))

    def wait_restarted(self, service: str, before: dict[str, Any], timeout: float = 60) -> None:
        """The engine restarted the service's container after `before` (an inspect) was taken."""

        def restarted() -> bool:
            state = self.inspect(service)
            return bool(
                state["RestartCount"] > before["RestartCount"] and state["State"]["Running"]
            )

        wait_until(restarted, timeout=timeout, interval=0.2)

    def health_log(self, service: str) -> str:
        """The last health probes (exit code, output): why a container is not healthy."""
        probes = self.inspect(service)["State"].get("Health", {}).get("Log", [])
        return "; ".join(
            f"{p['Start'][11:23]} exit {p['ExitCode']} {p['Output'].strip()[-200:]!r}"
            for p in probes[-3:]
        )

    def wait_healthy(self, services: list[str], timeout: float = 120) -> None:
        def healthy() -> bool:
            return all(self.health(s) == "healthy" for s in services)

        try:
            wait_until(healthy, timeout=timeout, interval=1.0)
        except Exception as exc:
            states = {s: (self.health(s), self.health_log(s)) for s in services}
            raise StackError(f"{self.name}: not healthy after {timeout} s: {states}") from exc

    def assert_hardened(self, skip_health: tuple[str, ...] = ()) -> None:
        """Read-only root, uid 10001, no capabilities, no-new-privileges; healthy (waited for:
        on a loaded host a probe can time out once, three in a row make a container unhealthy).
        """
        for service in self.ddc_services():
            host = self.inspect(service)["HostConfig"]
            assert host["ReadonlyRootfs"] is True, service
            assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], service
            assert host["Privileged"] is False, service
            assert host["SecurityOpt"] == ["no-new-privileges=true"], service
            # one exec: the uid, and what creating a file in / does (EROFS: the read-only root,
            # not merely a directory the user may not write)
            facts = self.exec(service, "python", "-c", ROOT_PROBE).split()
            assert facts == ["10001", str(errno.EROFS)], (service, facts)
            # a buffer warning gives advice a container can use: the host's sysctl or
            # CAP_NET_ADMIN, never "run as root"
            for line in self.logs(service).splitlines():
                if "socket buffer is" in line:
                    assert "on the host" in line and "CAP_NET_ADMIN" in line, (service, line)
        self.wait_healthy([s for s in self.ddc_services() if s not in skip_health], timeout=90)


def send_udp(address: tuple[str, int], payloads: list[bytes], rate: float) -> None:
    """Datagrams at `rate` per second (paced in batches of 1 ms)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    start = time.monotonic()
    for index, payload in enumerate(payloads):
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0.001:
            time.sleep(delay)
        sock.sendto(payload, address)
    sock.close()


def send_tcp(address: tuple[str, int], records: list[bytes]) -> None:
    """Records with a 4-byte big-endian length prefix on one connection."""
    with socket.create_connection(address, timeout=30) as sock:
        for record in records:
            sock.sendall(len(record).to_bytes(4, "big") + record)


def payloads(
    count: int, tag: str, sizes: tuple[int, ...] = (1, 100, 1400, 3000, 9000)
) -> list[bytes]:
    """Distinct payloads of several sizes (some need fragmenting), each naming its index."""
    out = []
    for index in range(count):
        head = f"{tag}-{index:06d}|".encode()
        size = max(len(head), sizes[index % len(sizes)])
        out.append(head + bytes((index + k) % 251 for k in range(size - len(head))))
    return out
