"""`ddc` daemons as child processes, and an ingress/egress pair on loopback with free ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from devtools.harness.process import Process, log_tail, python_argv, wait_until
from devtools.harness.toml_files import write_toml

DDC = python_argv("ddc.cli")
"""argv prefix of the `ddc` command: this interpreter, `-m ddc.cli`."""


class Daemon(Process):
    """`ddc ROLE -c CONFIG` with its HTTP port, output appended to `log_path`."""

    def __init__(
        self,
        role: str,
        config: Path,
        http_port: int | None,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        env = dict(env or {})
        if role == "egress" and "[egress.spool]" not in config.read_text():
            # tests never share the default /var/lib/ddc/spool: a spool beside the log, kept
            # across restarts of this daemon (kill -9 tests replay from it); DDC_HARNESS_SPOOL
            # set (benches: "" = the in-memory spool) is used instead
            default = str(log_path.parent / f"spool-{log_path.stem}")
            env.setdefault("DDC__SPOOL__DIR", os.environ.get("DDC_HARNESS_SPOOL", default))
        super().__init__(
            log_path.stem, [*DDC, role, "-c", str(config)], log_path.parent, http_port, env
        )
        self.role = role
        self.config = config
        self.log_path = log_path


def _free_ports(*kinds: str) -> list[int]:
    """A free port for each kind ("udp" or another: TCP), all different: each probe stays bound
    until all are chosen (probes in turn may be handed the same port: the ingress once found
    its HTTP port taken by the egress's)."""
    probes = [
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        for kind in kinds
    ]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class Pair:
    """Config and processes of one `ddc ingress` + `ddc egress` on loopback with free ports.

    source/sink: the plugin types; the tables take these extra keys (a dict each):
    `ingress` and `egress` (top tables), `source_options`, `transport` (ingress transport),
    `egress_transport`, `sink_options`, and `filters` (a list: [[ingress.filters]]).
    `destination_port` is where the ingress sends (the egress's link port unless a diode
    simulator sits between); `sink_port` where a UDP/TCP sink delivers. With `fast_heartbeats`
    (tests) the ingress beats every 0.2 s and the egress declares the link down after 1 s.
    The ingress gets an admin token file (`admin_token`, mode 600) unless `ingress` sets
    admin_token_file (None: no token); `ingress.post()` sends it.
    """

    def __init__(
        self,
        tmp: Path,
        name: str = "pair",
        source: str = "udp",
        sink: str = "udp",
        *,
        ingress: dict[str, Any] | None = None,
        egress: dict[str, Any] | None = None,
        source_options: dict[str, Any] | None = None,
        transport: dict[str, Any] | None = None,
        egress_transport: dict[str, Any] | None = None,
        sink_options: dict[str, Any] | None = None,
        filters: list[dict[str, Any]] | None = None,
        sink_port: int | None = None,
        fast_heartbeats: bool = True,
    ) -> None:
        self.tmp = tmp
        self.name = name
        self.source_type = source
        self.sink_type = sink
        ports = _free_ports(source, "udp", "udp", sink, "tcp", "tcp")
        self.source_port, self.link_port, self.sender_port = ports[:3]
        self.destination_port = self.link_port
        self.sink_port = sink_port or (ports[3] if sink in ("udp", "tcp") else None)
        self.ingress_http, self.egress_http = ports[4:]
        self.ingress_table = dict(ingress or {})
        self.egress_table = dict(egress or {})
        self.source_options = dict(source_options or {})
        self.transport = dict(transport or {})
        self.egress_transport = dict(egress_transport or {})
        self.sink_options = dict(sink_options or {})
        self.filters = list(filters or [])
        self.fast_heartbeats = fast_heartbeats
        self.ingress: Daemon | None = None
        self.egress: Daemon | None = None
        self.admin_token = f"test-admin-token-{name}-{self.ingress_http}"

    def ingress_config(self) -> Path:
        beats = {"heartbeat_interval": 0.2} if self.fast_heartbeats else {}
        token = {}
        if "admin_token_file" not in self.ingress_table:
            token_path = self.tmp / f"{self.name}-admin.token"
            token_path.write_text(self.admin_token + "\n")
            token_path.chmod(0o600)
            token = {"admin_token_file": token_path.name}  # relative: resolved from the config
        tables: dict[str, Any] = {
            "ingress": {
                "name": self.name,
                "http_listen": f"127.0.0.1:{self.ingress_http}",
                **token,
                # a key set to None is left out (admin_token_file = None: no token at all)
                **{key: value for key, value in self.ingress_table.items() if value is not None},
            },
            "ingress.source": {
                "type": self.source_type,
                "listen": f"127.0.0.1:{self.source_port}",
                **self.source_options,
            },
            "ingress.transport": {
                "destination": f"127.0.0.1:{self.destination_port}",
                "bind": f"127.0.0.1:{self.sender_port}",
                **beats,
                **self.transport,
            },
        }
        if self.filters:
            tables["ingress.filters"] = self.filters
        return write_toml(self.tmp / f"{self.name}-ingress.toml", tables)

    def egress_config(self) -> Path:
        sink: dict[str, Any] = {"type": self.sink_type}
        if self.sink_port:
            sink["target"] = f"127.0.0.1:{self.sink_port}"
        beats = {"heartbeat_timeout": 1.0} if self.fast_heartbeats else {}
        tables: dict[str, Any] = {
            "egress": {
                "name": self.name,
                "http_listen": f"127.0.0.1:{self.egress_http}",
                **self.egress_table,
            },
            "egress.transport": {
                "listen": f"127.0.0.1:{self.link_port}",
                **beats,
                **self.egress_transport,
            },
            "egress.sink": {**sink, **self.sink_options},
        }
        return write_toml(self.tmp / f"{self.name}-egress.toml", tables)

    def start_egress(self) -> Daemon:
        self.egress = self._start("egress", self.egress_config(), self.egress_http)
        return self.egress

    def start_ingress(self) -> Daemon:
        config = self.ingress_config()
        self.ingress = Daemon(
            "ingress", config, self.ingress_http, self.tmp / f"{self.name}-ingress.log"
        )
        if "admin_token_file" not in self.ingress_table:
            self.ingress.headers = {"Authorization": f"Bearer {self.admin_token}"}
        self.ingress.start()
        return self.ingress

    def _start(self, role: str, config: Path, http_port: int) -> Daemon:
        return Daemon(role, config, http_port, self.tmp / f"{self.name}-{role}.log").start()

    def start(self) -> Pair:
        """The egress, then the ingress; returns once the egress has seen the link up."""
        egress = self.start_egress()
        ingress = self.start_ingress()

        def up() -> bool:
            for daemon in (ingress, egress):
                if daemon.process is not None and daemon.process.poll() is not None:
                    raise AssertionError(
                        f"{daemon.name} exited before the link came up: {self._not_up()}"
                    )
            return bool(egress.health()["link_up"])

        wait_until(up, 30, message=self._not_up)
        return self

    def _not_up(self) -> str:
        """What a link that did not come up leaves behind: both daemons' last log lines."""
        tails = [
            f"--- {daemon.name} log:\n{log_tail(daemon, 1500)}"
            for daemon in (self.ingress, self.egress)
            if daemon is not None
        ]
        return "\n".join(["link up", *tails])

    def stop(self) -> None:
        for daemon in (self.ingress, self.egress):
            if daemon is not None:
                daemon.stop()
