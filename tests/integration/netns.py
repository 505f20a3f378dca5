"""A one-way link between two network namespaces, as on a hardware diode, with real kernel loss.

Built by `VethDiode.create()`, removed by `remove()` (namespaces, the veths and every rule in
them; call it in a `finally`):

* namespaces `ddcA<pid>` (sending side) and `ddcB<pid>` (receiving side) joined by a veth pair,
  MTU 1500, 198.18.N.1/30 (A) -> 198.18.N.2/30 (B), from 198.18.0.0/15, the benchmarking range;
* a permanent neighbour entry for B on A's side; ARP off and every outbound packet dropped on
  B's link side: nothing ever goes back;
* A's end segments UDP GSO sends before the link (`gso_max_segs 1`), as a NIC puts each of
  their datagrams on the wire: B's rules then see (and drop) one datagram at a time;
* loss on B's side: `iptables -t raw -A PREROUTING -i VETH -m statistic --mode random
  --probability P -j DROP` (a drop in A's OUTPUT would be an EPERM the sender sees, which a
  real wire never does). Control packets (StartUp, HeartBeat, Shutdown: 9-byte datagrams, 37-byte
  IP packets) are exempted by a RETURN rule in front of it: the egress does not count their loss
  as lost packets, so the drop rule's counter then counts data and parity packets only;
* a management veth from the root namespace into each (198.18.N.5/.6 to A, .9/.10 to B) for the
  daemons' HTTP, so the test reads /metrics and /healthz directly.

Commands inside a namespace: `exec_argv(ns, argv)`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess


def available() -> str | None:
    """Why the link cannot be built here (None when it can): needs root, `ip` and `iptables`."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs the `{tool}` command"
    return None


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


class VethDiode:
    def __init__(self, loss: float, tag: int | None = None) -> None:
        tag = os.getpid() if tag is None else tag
        self.loss = loss
        self.a, self.b = f"ddcA{tag}", f"ddcB{tag}"
        self.link_a, self.link_b = f"dla{tag}", f"dlb{tag}"  # <= 15 characters
        self.mgmt_a, self.mgmt_b = f"dma{tag}", f"dmb{tag}"
        net = f"198.18.{tag % 250 + 1}"
        self.addr_a, self.addr_b = f"{net}.1", f"{net}.2"
        self.mgmt_root_a, self.mgmt_ns_a = f"{net}.5", f"{net}.6"
        self.mgmt_root_b, self.mgmt_ns_b = f"{net}.9", f"{net}.10"
        self.created = False

    def create(self) -> VethDiode:
        self.created = True
        a, b = self.a, self.b
        run("ip", "netns", "add", a)
        run("ip", "netns", "add", b)
        run(
            "ip",
            "link",
            "add",
            self.link_a,
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            self.link_b,
            "netns",
            b,
        )
        for ns, dev, addr in ((a, self.link_a, self.addr_a), (b, self.link_b, self.addr_b)):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
        for ns, root_dev, root_addr, ns_addr in (
            (a, self.mgmt_a, self.mgmt_root_a, self.mgmt_ns_a),
            (b, self.mgmt_b, self.mgmt_root_b, self.mgmt_ns_b),
        ):
            run("ip", "link", "add", root_dev, "type", "veth", "peer", "name", "mgmt", "netns", ns)
            run("ip", "addr", "add", f"{root_addr}/30", "dev", root_dev)
            run("ip", "link", "set", root_dev, "up")
            run("ip", "-n", ns, "addr", "add", f"{ns_addr}/30", "dev", "mgmt")
            run("ip", "-n", ns, "link", "set", "mgmt", "up")
        mac_b = re.search(r"link/ether (\S+)", run("ip", "-n", b, "link", "show", self.link_b))
        assert mac_b is not None
        run(
            "ip",
            "-n",
            a,
            "neigh",
            "replace",
            self.addr_b,
            "lladdr",
            mac_b.group(1),
            "dev",
            self.link_a,
            "nud",
            "permanent",
        )
        run("ip", "-n", b, "link", "set", self.link_b, "arp", "off")
        # a NIC puts every datagram of a UDP GSO send on the wire as its own frame; a veth
        # would carry the batch into B as one packet (one drop would lose all its datagrams)
        run("ip", "-n", a, "link", "set", self.link_a, "gso_max_segs", "1")
        self.iptables(b, "-A", "OUTPUT", "-o", self.link_b, "-j", "DROP")
        incoming = ("-t", "raw", "-A", "PREROUTING", "-i", self.link_b)  # b's end of the link
        self.iptables(b, *incoming, "-m", "length", "--length", "0:37", "-j", "RETURN")
        loss = ("--mode", "random", "--probability", str(self.loss))
        self.iptables(b, *incoming, "-m", "statistic", *loss, "-j", "DROP")
        return self

    def iptables(self, ns: str, *args: str) -> str:
        return run("ip", "netns", "exec", ns, "iptables", "-w", *args)

    def dropped(self) -> int:
        """Packets the loss rule dropped (its counter; one IP packet each)."""
        table = self.iptables(self.b, "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n")
        for line in table.splitlines():
            if "statistic" in line and "DROP" in line:
                return int(line.split()[0])
        raise RuntimeError(f"no loss rule in:\n{table}")

    def zero(self) -> None:
        self.iptables(self.b, "-t", "raw", "-Z", "PREROUTING")

    def exec_argv(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def remove(self) -> None:
        """Deletes both namespaces (their veths and rules go with them) and the root-side veths."""
        if not self.created:
            return
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        for dev in (self.mgmt_a, self.mgmt_b):
            subprocess.run(["ip", "link", "del", dev], capture_output=True, timeout=30)
        self.created = False
