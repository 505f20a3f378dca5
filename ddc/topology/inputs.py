"""Reading the checker's input files (compose, Kubernetes, ddc TOML) into one graph."""

from __future__ import annotations

from pathlib import Path

import yaml

from ddc.topology.compose import ComposeFile
from ddc.topology.configs import node_from_toml, read_text
from ddc.topology.errors import TopologyInputError
from ddc.topology.kubernetes import Manifests, is_manifest
from ddc.topology.model import Graph, Node
from ddc.topology.paths import display_path

SUFFIXES = (".yml", ".yaml", ".toml", ".json")


def expand(paths: list[str]) -> list[Path]:
    """Files as given; a directory stands for the compose/k8s/TOML files under it."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise TopologyInputError(f"{name}: no such file or directory")
    return files


def read_graph(paths: list[str]) -> Graph:
    graph = Graph()
    manifests = Manifests()
    standalone: list[Node] = []
    mounted: set[str] = set()
    for path in expand(paths):
        display = display_path(path)
        if path.suffix == ".toml":
            node = node_from_toml(path, display)
            if node is None:
                graph.notes.append(f"{display}: not an ingress/egress config, skipped")
            else:
                standalone.append(node)
            continue
        try:
            documents = [
                doc for doc in yaml.safe_load_all(read_text(path, display)) if doc is not None
            ]
        except yaml.YAMLError as exc:
            raise TopologyInputError(f"{display}: invalid YAML: {exc}") from None
        if len(documents) == 1 and isinstance(documents[0], dict) and "services" in documents[0]:
            compose = ComposeFile(path, documents[0], display)
            graph.nodes.extend(compose.nodes())
            mounted |= compose.mounted
            graph.notes.extend(compose.notes)
            continue
        if not documents or not all(is_manifest(doc) for doc in documents):
            raise TopologyInputError(
                f"{display}: neither a compose file (no 'services') nor Kubernetes manifests"
            )
        for document in documents:
            manifests.add(document, display)
    graph.nodes.extend(manifests.nodes())
    graph.notes.extend(manifests.notes)
    for node in standalone:
        if node.config_path in mounted:
            graph.notes.append(f"{node.origin}: also mounted by a compose service, counted once")
        else:
            graph.nodes.append(node)
    return graph
