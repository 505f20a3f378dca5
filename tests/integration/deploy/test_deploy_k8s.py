"""The Kubernetes manifests: schema-valid (kubernetes-validate ships the official JSON schemas,
strict mode: unknown fields refused) and shaped for the 1:1 pairing rule."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = sorted((ROOT / "k8s").glob("*.yaml"))
KUBERNETES_VERSIONS = ["1.28.0", "1.33.0"]


def documents():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            yield path, doc


def by_kind(kind):
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


@pytest.fixture(scope="module")
def kubernetes_validate():
    return pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (test extra) not installed"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_schema_valid(kubernetes_validate, version):
    count = 0
    for path, doc in documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )
        count += 1
    assert count == 22  # 16 objects, 5 NetworkPolicies, the ingress admin Service


def test_schema_validation_can_fail(kubernetes_validate):
    deployment = copy.deepcopy(by_kind("Deployment")["ddc-egress-a"])
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(by_kind("Deployment")["ddc-egress-a"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", ["ddc-ingress-a", "ddc-egress-a"])
def test_proxies_are_single_replica_recreate_probed_non_root(name):
    deployment = by_kind("Deployment")[name]
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"][:2] == ["ddc", name.split("-")[1]]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    config_map = pod["volumes"][0]["configMap"]["name"]
    assert config_map in by_kind("ConfigMap")


def test_egress_service_exposes_the_udp_port():
    service = by_kind("Service")["ddc-egress-a"]
    udp = [port for port in service["spec"]["ports"] if port["protocol"] == "UDP"]
    assert [(port["port"], port["targetPort"]) for port in udp] == [(7001, "diode")]
    container = by_kind("Deployment")["ddc-egress-a"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "diode", "containerPort": 7001, "protocol": "UDP"} in container["ports"]
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_dedup_supervisor_and_redis_are_there():
    deployments = by_kind("Deployment")
    assert (
        deployments["ddc-dedup"]["spec"]["template"]["spec"]["containers"][0]["command"][0]
        == "ddc-dedup"
    )
    assert deployments["ddc-supervisor"]["spec"]["template"]["spec"]["containers"][0]["command"][
        :2
    ] == ["ddc", "supervise"]
    redis = by_kind("StatefulSet")["ddc-redis"]["spec"]["template"]["spec"]["containers"][0]
    assert "--appendonly" in redis["args"] and "yes" in redis["args"]


def test_ingress_has_a_fixed_source_port_so_a_restart_resyncs_at_once():
    """A container restarted after a crash keeps its pod's address; with a fixed `bind` port the
    egress takes its StartUp at once (compose/cold-standby.yml does the same)."""
    import tomllib

    config_map = by_kind("ConfigMap")["ddc-ingress-a"]
    config = tomllib.loads(config_map["data"]["ingress.toml"])
    host, _, port = config["ingress"]["transport"]["bind"].rpartition(":")
    assert int(port) != 0
    assert "net.core.rmem_max" in (ROOT / "k8s" / "egress.yaml").read_text().split("apiVersion")[0]


def allowed_sources(component: str, port: int) -> list[dict]:
    """The `from` peers of the component's policy rules that open `port` (a rule without `from`:
    [{}], anyone)."""
    (policy,) = [
        doc
        for doc in by_kind("NetworkPolicy").values()
        if doc["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": component}
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    peers: list[dict] = []
    for rule in policy["spec"]["ingress"]:
        if any(p["port"] == port for p in rule["ports"]):
            peers += rule.get("from", [{}])
    return peers


SUPERVISOR = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "supervisor"}}}
SCRAPER = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"ddc/scrape": "true"}}}


def test_a_network_policy_per_component_opens_only_what_it_serves():
    workloads = {**by_kind("Deployment"), **by_kind("StatefulSet")}
    components = {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for w in workloads.values()
    }
    assert components == {"ingress", "egress", "dedup", "redis", "supervisor"}
    assert allowed_sources("ingress", 7000) == [{}]  # the source application
    assert allowed_sources("egress", 7001) == [{}]  # the diode
    assert allowed_sources("ingress", 9101) == [SUPERVISOR, SCRAPER]  # admin: supervisor only
    assert allowed_sources("egress", 9102) == [SUPERVISOR, SCRAPER]
    egress_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "egress"}}}
    assert allowed_sources("dedup", 8080) == [egress_pods, SCRAPER]
    dedup_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "dedup"}}}
    assert allowed_sources("redis", 6379) == [dedup_pods]
    assert allowed_sources("supervisor", 9190) == [SCRAPER]


def test_the_ingress_admin_port_has_its_own_service_and_needs_the_token():
    import tomllib

    services = by_kind("Service")
    assert [p["port"] for p in services["ddc-ingress-a"]["spec"]["ports"]] == [7000]
    assert [p["port"] for p in services["ddc-ingress-a-admin"]["spec"]["ports"]] == [9101]
    ingress = tomllib.loads(by_kind("ConfigMap")["ddc-ingress-a"]["data"]["ingress.toml"])
    supervisor = tomllib.loads(by_kind("ConfigMap")["ddc-supervisor"]["data"]["supervisor.toml"])
    token = ingress["ingress"]["admin_token_file"]
    assert supervisor["supervisor"]["token_file"] == token
    assert supervisor["supervisor"]["pairs"][0]["ingress"] == "http://ddc-ingress-a-admin:9101"
    for name in ("ddc-ingress-a", "ddc-supervisor"):
        pod = by_kind("Deployment")[name]["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert secrets.get("token") == "ddc-admin-token"
        assert set(secrets) <= {"token", "link-keys"}  # link-keys: packet authentication
        assert token.startswith(mounts["token"] + "/")


def test_both_sides_of_the_pair_sign_and_verify_with_the_key_secret():
    import tomllib

    maps = by_kind("ConfigMap")
    ingress = tomllib.loads(maps["ddc-ingress-a"]["data"]["ingress.toml"])["ingress"]
    egress = tomllib.loads(maps["ddc-egress-a"]["data"]["egress.toml"])["egress"]
    path = ingress["transport"]["auth_keys"]
    assert egress["transport"]["auth_keys"] == path
    for name in ("ddc-ingress-a", "ddc-egress-a"):
        pod = by_kind("Deployment")[name]["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert secrets["link-keys"] == "ddc-link-keys-a"
        assert path.startswith(mounts["link-keys"] + "/")


def test_redis_requires_the_password_the_dedup_service_reads_from_a_secret():
    import tomllib

    redis = by_kind("StatefulSet")["ddc-redis"]["spec"]["template"]["spec"]["containers"][0]
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    (env,) = redis["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "ddc-redis-password", "key": "password"}
    assert "REDISCLI_AUTH" in " ".join(redis["readinessProbe"]["exec"]["command"])
    dedup = tomllib.loads(by_kind("ConfigMap")["ddc-dedup"]["data"]["dedup.toml"])
    pod = by_kind("Deployment")["ddc-dedup"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert dedup["dedup"]["redis_password_file"] == mounts["redis-password"] + "/password"
