"""`ddc topology check FILE...`: exit 0 when every ingress has exactly its own egress.

Exit 1 on a pairing violation (each one explained, naming the services/files), 2 when an
input cannot be read or a config in it is invalid.
"""

from __future__ import annotations

import argparse
import sys

from ddc.topology.errors import TopologyInputError
from ddc.topology.graph import analyze
from ddc.topology.inputs import read_graph
from ddc.units import format_hostport

EXIT_OK, EXIT_VIOLATION, EXIT_INPUT = 0, 1, 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="check compose files, Kubernetes manifests and ddc TOML configs",
        description=(
            "Builds the graph of ingress destinations and egress listeners from compose files "
            "(service commands, mounted configs, DDC__ env overrides), Kubernetes manifests "
            "(workloads, ConfigMaps, Services) and ddc TOML configs, then refuses: two ingresses "
            "aimed at one egress, one ingress aimed at several, two pairs sharing a port, and, "
            "when the input holds both sides, an egress without ingress or an ingress whose "
            "destination no egress listens on. Exit 0: fine; 1: violation; 2: unreadable input."
        ),
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="file or directory")
    check.add_argument(
        "-q", "--quiet", action="store_true", help="print only problems and warnings"
    )


def run(args: argparse.Namespace) -> int:
    try:
        graph = read_graph(args.files)
    except TopologyInputError as exc:
        print(f"topology check: {exc}", file=sys.stderr)
        return EXIT_INPUT
    result = analyze(graph)
    for note in graph.notes:
        if not args.quiet or note.startswith("warning:"):
            print(note, file=sys.stderr)
    if not args.quiet or result.violations:
        for ingress, egress in result.pairs:
            print(f"pair: {ingress.label}\n   -> {egress.label} (port {egress.listens_on[1]})")
        for relay in graph.of_role("relay"):
            print(
                f"relay: {relay.label} {format_hostport(relay.listens_on)} -> {format_hostport(relay.aimed_at)}"
            )
    if result.violations:
        print(f"\ntopology check FAILED: {len(result.violations)} pairing violation(s)")
        for number, violation in enumerate(result.violations, 1):
            print(f"\n{number}. [{violation.kind}] {violation.message}")
        return EXIT_VIOLATION
    counts = {role: len(graph.of_role(role)) for role in ("ingress", "egress")}
    print(
        f"topology check OK: {len(result.pairs)} link pair(s), "
        f"{counts['ingress']} ingress(es), {counts['egress']} egress(es)"
    )
    return EXIT_OK
