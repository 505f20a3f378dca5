"""Kubernetes manifests: ddc containers in workloads, their ConfigMap configs and Services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ddc.topology.configs import DdcCommand, command_config, parse_command, proxy_node, relay_node
from ddc.topology.errors import TopologyInputError
from ddc.topology.model import (
    ANY_HOST,
    Address,
    Node,
    local_addresses,
    normalize_host,
    open_addresses,
)

WORKLOADS = ("Deployment", "StatefulSet", "ReplicaSet", "Pod")


def is_manifest(document: Any) -> bool:
    return isinstance(document, dict) and "apiVersion" in document and "kind" in document


class K8sObject:
    def __init__(self, document: dict[str, Any], display: str) -> None:
        self.document = document
        self.display = display
        self.kind = str(document["kind"])
        metadata = document.get("metadata") or {}
        self.name = str(metadata.get("name", ""))
        self.namespace = str(metadata.get("namespace") or "default")
        self.spec = document.get("spec") or {}


@dataclass(frozen=True)
class _Pod:
    """A workload's pod: where its containers' configs, environments and addresses are found."""

    workload: K8sObject
    spec: dict[str, Any]
    labels: dict[str, Any]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class Manifests:
    """Every manifest of the input; a workload may use ConfigMaps and Services from other files."""

    def __init__(self) -> None:
        self.objects: list[K8sObject] = []
        self.notes: list[str] = []

    def add(self, document: dict[str, Any], display: str) -> None:
        if document.get("kind") == "List":
            for item in _as_list(document.get("items")):
                if is_manifest(item):
                    self.add(item, display)
            return
        self.objects.append(K8sObject(document, display))

    def _find(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        for obj in self.objects:
            if obj.kind == kind and obj.namespace == namespace and obj.name == name:
                return obj
        return None

    def nodes(self) -> list[Node]:
        found: list[Node] = []
        for workload in self.objects:
            if workload.kind not in WORKLOADS:
                continue
            template = (
                workload.document if workload.kind == "Pod" else workload.spec.get("template") or {}
            )
            labels = (template.get("metadata") or {}).get("labels") or {}
            pod = _Pod(workload, template.get("spec") or {}, labels)
            for container in _as_list(pod.spec.get("containers")):
                command = parse_command(container.get("command"), container.get("args"))
                if command is None:
                    continue
                where = f"{workload.display} {workload.kind} {workload.name!r} container {container.get('name')!r}"
                node = self._node(pod, container, command, where)
                replicas = 1 if workload.kind == "Pod" else int(workload.spec.get("replicas", 1))
                found.extend(node.replicate(replicas))
                strategy = (workload.spec.get("strategy") or {}).get("type", "RollingUpdate")
                if workload.kind == "Deployment" and strategy != "Recreate":
                    self.notes.append(
                        f"warning: {where}: strategy {strategy} runs two pods at once during a "
                        "rollout; use strategy Recreate for ddc proxies"
                    )
        return found

    # --- one container ----------------------------------------------------------------

    def _node(self, pod: _Pod, container: dict[str, Any], command: DdcCommand, where: str) -> Node:
        ns = pod.workload.namespace
        scope = f"k8s:{ns}"
        visible = (scope, "k8s", None)

        def addresses(listen: tuple[str, int]) -> list[Address]:
            return self._addresses(pod, listen)

        if command.command == "diode-sim":
            return relay_node(command, where, scope, visible, addresses)
        config = command_config(command, where)
        text, source = self._config_text(pod, container, config, where)
        environ = self._environment(ns, container)
        return proxy_node(command, where, text, source, environ, scope, visible, addresses)

    def _config_text(
        self, pod: _Pod, container: dict[str, Any], config: str, where: str
    ) -> tuple[str, str]:
        target = PurePosixPath(config)
        volumes = {v.get("name"): v for v in _as_list(pod.spec.get("volumes"))}
        for mount in _as_list(container.get("volumeMounts")):
            mount_path = PurePosixPath(str(mount.get("mountPath", "")))
            sub_path = mount.get("subPath")
            if target == mount_path and sub_path:
                relative = str(sub_path)
            elif mount_path in target.parents:
                relative = str(target.relative_to(mount_path))
                if sub_path:
                    relative = f"{sub_path}/{relative}"
            else:
                continue
            volume = volumes.get(mount.get("name")) or {}
            for ref in self._config_map_refs(volume):
                found = self._config_map_file(pod.workload.namespace, ref, relative)
                if found is not None:
                    return found
        raise TopologyInputError(
            f"{where}: config {config} is not a file of a ConfigMap in the input"
        )

    def _config_map_refs(self, volume: dict[str, Any]) -> list[dict[str, Any]]:
        refs = [volume["configMap"]] if isinstance(volume.get("configMap"), dict) else []
        for source in _as_list((volume.get("projected") or {}).get("sources")):
            if isinstance(source.get("configMap"), dict):
                refs.append(source["configMap"])
        return refs

    def _config_map_file(
        self, namespace: str, ref: dict[str, Any], relative: str
    ) -> tuple[str, str] | None:
        config_map = self._find("ConfigMap", namespace, str(ref.get("name")))
        if config_map is None:
            return None
        data = config_map.document.get("data") or {}
        items = _as_list(ref.get("items"))
        files = (
            {str(i.get("path")): str(i.get("key")) for i in items}
            if items
            else {k: k for k in data}
        )
        key = files.get(relative)
        if key is None or key not in data:
            return None
        return str(data[key]), f"ConfigMap {config_map.name!r} key {key!r} in {config_map.display}"

    def _environment(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in _as_list(container.get("envFrom")):
            ref = source.get("configMapRef") or {}
            config_map = self._find("ConfigMap", namespace, str(ref.get("name")))
            if config_map is not None:
                prefix = str(source.get("prefix") or "")
                for key, value in (config_map.document.get("data") or {}).items():
                    env[prefix + str(key)] = str(value)
        for item in _as_list(container.get("env")):
            if "value" in item:
                env[str(item.get("name"))] = str(item["value"])
        return env

    def _addresses(self, pod: _Pod, listen: tuple[str, int]) -> list[Address]:
        ns, port = pod.workload.namespace, listen[1]
        if pod.spec.get("hostNetwork"):
            return open_addresses(listen)
        addresses: list[Address] = []
        named_ports: dict[str, int] = {}
        for container in _as_list(pod.spec.get("containers")):
            for spec in _as_list(container.get("ports")):
                if spec.get("name"):
                    named_ports[str(spec["name"])] = int(spec.get("containerPort", 0))
                if (
                    spec.get("protocol") == "UDP"
                    and spec.get("hostPort")
                    and spec.get("containerPort") == port
                ):
                    addresses.append(Address(None, ANY_HOST, int(spec["hostPort"])))
        for service in self.objects:
            if service.kind != "Service" or service.namespace != ns:
                continue
            selector = service.spec.get("selector") or {}
            if not selector or any(pod.labels.get(k) != v for k, v in selector.items()):
                continue
            for spec in _as_list(service.spec.get("ports")):
                if spec.get("protocol", "TCP") != "UDP":
                    continue
                target = spec.get("targetPort", spec.get("port"))
                target = named_ports.get(target, -1) if isinstance(target, str) else int(target)
                if target != port:
                    continue
                addresses.extend(self._service_addresses(service, int(spec["port"])))
                if spec.get("nodePort"):
                    addresses.append(Address(None, ANY_HOST, int(spec["nodePort"])))
        return addresses + local_addresses(f"k8s:{ns}", listen, [])

    def _service_addresses(self, service: K8sObject, port: int) -> list[Address]:
        name, ns = service.name, service.namespace
        addresses = [Address(f"k8s:{ns}", name, port)]
        for qualified in (f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            addresses.append(Address("k8s", qualified, port))
        cluster_ip = service.spec.get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            addresses.append(Address("k8s", normalize_host(str(cluster_ip)), port))
        return addresses
