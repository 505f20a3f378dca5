"""Matching ingress destinations to egress listeners, and the pairing rules (docs/deployment.md)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ddc.topology.model import Graph, Node
from ddc.topology.paths import display_path
from ddc.units import format_hostport

MAX_RELAY_HOPS = 8


@dataclass
class Violation:
    kind: str  # many-to-one | one-to-many | egress-without-ingress | ingress-without-egress | shared-port
    message: str


@dataclass
class Analysis:
    pairs: list[tuple[Node, Node]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


def targets(graph: Graph, node: Node, hops: int = 0) -> list[Node]:
    """The egresses a node's destination reaches, following diode relays."""
    host, port = node.aimed_at
    reached: list[Node] = []
    for other in graph.nodes:
        if other is node or other.role not in ("egress", "relay"):
            continue
        if not any(address.accepts(host, port, node.visible) for address in other.addresses):
            continue
        if other.role == "egress":
            reached.append(other)
        elif hops < MAX_RELAY_HOPS:
            reached.extend(t for t in targets(graph, other, hops + 1) if t not in reached)
    return reached


def _names(nodes: list[Node]) -> str:
    return "\n".join(f"    - {node.label}" for node in nodes)


def analyze(graph: Graph) -> Analysis:
    result = Analysis()
    ingresses, egresses = graph.of_role("ingress"), graph.of_role("egress")
    reached = {id(ingress): targets(graph, ingress) for ingress in ingresses}
    senders: dict[int, list[Node]] = defaultdict(list)
    for ingress in ingresses:
        for egress in reached[id(ingress)]:
            senders[id(egress)].append(ingress)

    for egress in egresses:
        incoming = senders[id(egress)]
        if len(incoming) > 1:
            result.violations.append(
                Violation(
                    "many-to-one",
                    f"{len(incoming)} ingresses are aimed at one egress (multi-to-one is forbidden: "
                    f"one egress has one sequence space and one reassembly state)\n"
                    f"  egress:\n    - {egress.label}\n  ingresses:\n{_names(incoming)}",
                )
            )
        elif not incoming and ingresses:
            result.violations.append(
                Violation(
                    "egress-without-ingress",
                    f"an egress that no ingress is aimed at (listening on "
                    f"{format_hostport(egress.listens_on)})\n  egress:\n    - {egress.label}",
                )
            )

    for ingress in ingresses:
        aimed = reached[id(ingress)]
        destination = format_hostport(ingress.aimed_at)
        if len(aimed) > 1:
            result.violations.append(
                Violation(
                    "one-to-many",
                    f"one ingress is aimed at {len(aimed)} egresses through {destination} "
                    f"(one-to-many is forbidden)\n  ingress:\n    - {ingress.label}\n  egresses:\n{_names(aimed)}",
                )
            )
        elif not aimed and egresses:
            result.violations.append(
                Violation(
                    "ingress-without-egress",
                    f"no egress in the input listens on the destination {destination} of an ingress\n"
                    f"  ingress:\n    - {ingress.label}",
                )
            )
        elif len(aimed) == 1 and len(senders[id(aimed[0])]) == 1:
            result.pairs.append((ingress, aimed[0]))

    result.violations.extend(_shared_ports(ingresses, egresses, reached))
    return result


def _shared_ports(
    ingresses: list[Node], egresses: list[Node], reached: dict[int, list[Node]]
) -> list[Violation]:
    """Each pair needs its own port: its own channel through the diode."""
    violations = []
    reported: set[tuple[object, int]] = set()
    by_port: dict[tuple[object, int], list[Node]] = defaultdict(list)
    for egress in egresses:
        by_port[(egress.scope, egress.listens_on[1])].append(egress)
    for (scope, port), nodes in by_port.items():
        if len({node.origin for node in nodes}) > 1:
            reported.add((scope, port))
            violations.append(
                Violation(
                    "shared-port",
                    f"{len(nodes)} egresses of different pairs listen on port {port}{_where(scope)} "
                    f"(each link pair needs its own port)\n  egresses:\n{_names(nodes)}",
                )
            )
    by_port = defaultdict(list)
    for ingress in ingresses:
        by_port[(ingress.scope, ingress.aimed_at[1])].append(ingress)
    for (scope, port), nodes in by_port.items():
        if (scope, port) in reported or len({node.origin for node in nodes}) < 2:
            continue
        ends = {tuple(id(egress) for egress in reached[id(node)]) for node in nodes}
        if len(ends) == 1 and len(next(iter(ends))) == 1:
            continue  # all aimed at the one same egress: reported as many-to-one
        violations.append(
            Violation(
                "shared-port",
                f"{len(nodes)} ingresses of different pairs send to port {port}{_where(scope)} "
                f"(each link pair needs its own port)\n  ingresses:\n{_names(nodes)}",
            )
        )
    return violations


def _where(scope: object) -> str:
    if scope is None:
        return ""
    kind, _, name = str(scope).partition(":")
    return (
        f" in compose file {display_path(name)}" if kind == "compose" else f" in namespace {name}"
    )
