"""The nodes of a deployment graph: ingresses, egresses and diode relays, with their addresses.

Host names only mean something inside a *scope*: a compose file's network namespace
(`compose:/abs/path.yml`), a Kubernetes namespace (`k8s:NAME`), the whole cluster (`k8s`) for
qualified service names, or `None` for plain addresses reachable from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Scope = str | None
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}
ANY_HOST = "*"


def normalize_host(host: str) -> str:
    host = host.strip("[]").lower()
    return "127.0.0.1" if host == "localhost" else host


@dataclass(frozen=True)
class Address:
    """Where a node can be reached: `host` in `scope` (`*` = any host), UDP `port`."""

    scope: Scope
    host: str
    port: int

    def accepts(self, host: str, port: int, visible: tuple[Scope, ...]) -> bool:
        if port != self.port or self.scope not in visible:
            return False
        return self.host == ANY_HOST or self.host == normalize_host(host)


@dataclass
class Node:
    """One running ingress, egress or diode relay (one per replica)."""

    role: str  # "ingress" | "egress" | "relay"
    origin: str  # the service/Deployment/file it comes from, for messages
    scope: Scope  # where it lives (ports are compared within one scope)
    visible: tuple[Scope, ...] = (None,)  # scopes whose names its destination resolves in
    destination: tuple[str, int] | None = None  # ingress: transport.destination; relay: forward
    listen: tuple[str, int] | None = None  # egress: transport.listen; relay: listen
    addresses: list[Address] = field(default_factory=list)
    config_path: str | None = None
    replica: tuple[int, int] | None = None  # (n, of) when the orchestrator runs several
    http_port: int | None = None  # the container port of http_listen (/metrics, /admin/*)

    @property
    def listens_on(self) -> tuple[str, int]:
        """An egress's or relay's listening address: the readers always set it for those roles."""
        assert self.listen is not None, f"{self.role} {self.origin} has no listening address"
        return self.listen

    @property
    def aimed_at(self) -> tuple[str, int]:
        """An ingress's or relay's destination: the readers always set it for those roles."""
        assert self.destination is not None, f"{self.role} {self.origin} has no destination"
        return self.destination

    @property
    def label(self) -> str:
        if self.replica and self.replica[1] > 1:
            return f"{self.origin} (replica {self.replica[0]} of {self.replica[1]})"
        return self.origin

    def replicate(self, count: int) -> list[Node]:
        if count <= 1:
            return [self]
        copies = []
        for index in range(count):
            copy = Node(**{**self.__dict__, "addresses": list(self.addresses)})
            copy.replica = (index + 1, count)
            copies.append(copy)
        return copies


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of_role(self, role: str) -> list[Node]:
        return [node for node in self.nodes if node.role == role]


def local_addresses(scope: Scope, listen: tuple[str, int], names: list[str]) -> list[Address]:
    """The addresses of a node listening on `listen` that other nodes know by `names`."""
    host, port = normalize_host(listen[0]), listen[1]
    if host in WILDCARD_HOSTS:
        return [Address(scope, normalize_host(name), port) for name in names if name]
    if host.startswith("127."):
        return []  # loopback inside a container or pod: nobody else can reach it
    return [Address(scope, host, port)]


def open_addresses(listen: tuple[str, int]) -> list[Address]:
    """A node on the host's network (or a plain config): its listen address, from anywhere."""
    host = normalize_host(listen[0])
    return [Address(None, ANY_HOST if host in WILDCARD_HOSTS else host, listen[1])]
