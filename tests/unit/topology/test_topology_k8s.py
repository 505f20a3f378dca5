"""`ddc topology check` on Kubernetes manifests: workloads, ConfigMap configs, UDP Services."""

from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "k8s"


@pytest.fixture
def manifests():
    """{file name: [documents]} of the project's k8s/ directory, to mutate."""
    return {
        path.name: list(yaml.safe_load_all(path.read_text())) for path in sorted(K8S.glob("*.yaml"))
    }


@pytest.fixture
def dump(write):
    def dump_all(manifests):
        paths = [write(f"k8s/{name}", yaml.safe_dump_all(docs)) for name, docs in manifests.items()]
        return paths[0].parent

    return dump_all


def find(manifests, kind, name):
    for docs in manifests.values():
        for doc in docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise KeyError((kind, name))


def test_project_manifests_pass(check):
    code, out, err = check(K8S)
    assert code == 0, out
    assert "1 link pair(s)" in out
    assert "Deployment 'ddc-ingress-a'" in out and "Deployment 'ddc-egress-a'" in out
    assert "warning" not in err


def test_egress_with_two_replicas_is_one_to_many(manifests, dump, check):
    find(manifests, "Deployment", "ddc-egress-a")["spec"]["replicas"] = 2
    code, out, _ = check(dump(manifests))
    assert code == 1
    section = out.split("[one-to-many]")[1]
    assert "Deployment 'ddc-egress-a'" in section and "(replica 1 of 2)" in section


def test_second_ingress_deployment_is_many_to_one(manifests, dump, check):
    import copy

    second = copy.deepcopy(find(manifests, "Deployment", "ddc-ingress-a"))
    second["metadata"]["name"] = "ddc-ingress-z"
    manifests["ingress.yaml"].append(second)
    code, out, _ = check(dump(manifests))
    assert code == 1
    section = out.split("[many-to-one]")[1]
    assert "Deployment 'ddc-ingress-a'" in section and "Deployment 'ddc-ingress-z'" in section


def test_service_without_the_udp_port_leaves_the_ingress_dangling(manifests, dump, check):
    service = find(manifests, "Service", "ddc-egress-a")
    service["spec"]["ports"] = [p for p in service["spec"]["ports"] if p["protocol"] != "UDP"]
    code, out, _ = check(dump(manifests))
    assert code == 1
    assert "no egress in the input listens on the destination ddc-egress-a:7001" in out
    assert "[egress-without-ingress]" in out


def test_container_env_override_is_applied(manifests, dump, check):
    deployment = find(manifests, "Deployment", "ddc-ingress-a")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "DDC__TRANSPORT__DESTINATION", "value": "ddc-egress-a.ddc.svc.cluster.local:7001"}
    ]
    assert check(dump(manifests))[0] == 0  # the qualified service name reaches the same egress
    container["env"] = [{"name": "DDC__TRANSPORT__DESTINATION", "value": "ddc-egress-a.other:7001"}]
    code, out, _ = check(dump(manifests))
    assert code == 1 and "destination ddc-egress-a.other:7001" in out


def test_rolling_update_is_warned_about(manifests, dump, check):
    find(manifests, "Deployment", "ddc-egress-a")["spec"]["strategy"] = {"type": "RollingUpdate"}
    code, _, err = check(dump(manifests))
    assert code == 0
    assert "Deployment 'ddc-egress-a'" in err and "use strategy Recreate" in err


def test_missing_config_map_is_unreadable_input(manifests, dump, check):
    manifests["egress.yaml"] = [d for d in manifests["egress.yaml"] if d["kind"] != "ConfigMap"]
    code, _, err = check(dump(manifests))
    assert code == 2
    assert "Deployment 'ddc-egress-a'" in err and "not a file of a ConfigMap" in err
