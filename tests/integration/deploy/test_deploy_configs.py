"""Every config the stacks and manifests mount is valid for the program that reads it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from ddc.config import load_config
from ddc.supervisor.config import load_supervisor_config

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "compose" / "config").rglob("*.toml"))


def role_of(path: Path) -> str:
    return next(iter(tomllib.loads(path.read_text())))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_compose_config_is_valid(path):
    role = role_of(path)
    if role in ("ingress", "egress"):
        config = load_config(path, role, {})
        assert config["http_listen"][0] == "0.0.0.0"  # reachable by the supervisor and healthchecks
    elif role == "supervisor":
        assert load_supervisor_config(path, {})["pairs"]
    elif role == "dedup":
        dedup_config = pytest.importorskip(
            "dedup_service.config", reason="dedup service not there yet"
        )
        assert dedup_config.load_dedup_config(path, {})["redis_url"]
    else:
        pytest.fail(f"{path}: unexpected role {role}")


def test_every_ingress_and_egress_role_is_covered():
    roles = [role_of(path) for path in CONFIGS]
    assert roles.count("ingress") == 8 and roles.count("egress") == 8


def test_demo_can_override_every_address_with_env():
    """scripts/demo runs the redundant configs on loopback, overriding addresses with DDC__ vars."""
    base = ROOT / "compose" / "config" / "redundant"
    ingress = load_config(
        base / "ingress-a.toml",
        "ingress",
        {
            "DDC__TRANSPORT__DESTINATION": "127.0.0.1:17111",
            "DDC__SOURCE__LISTEN": "127.0.0.1:17110",
            "DDC__HTTP_LISTEN": "127.0.0.1:19131",
        },
    )
    assert ingress["transport"]["destination"] == ("127.0.0.1", 17111)
    assert ingress["source"]["listen"] == ("127.0.0.1", 17110)
    assert ingress["http_listen"] == ("127.0.0.1", 19131)
    egress = load_config(
        base / "egress-a.toml",
        "egress",
        {
            "DDC__TRANSPORT__LISTEN": "127.0.0.1:17111",
            "DDC__SINK__URL": "http://127.0.0.1:18080",
        },
    )
    assert egress["transport"]["listen"] == ("127.0.0.1", 17111)
    assert egress["sink"]["url"] == "http://127.0.0.1:18080" and egress["sink"]["link"] == "a"


def test_kubernetes_config_maps_hold_valid_configs():
    checked = 0
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] != "ConfigMap":
                continue
            for key, text in doc["data"].items():
                document = tomllib.loads(text)
                role = next(iter(document))
                target = Path("/nonexistent") / key  # parsed from the document, never read
                if role in ("ingress", "egress"):
                    from ddc.config.loader import load_role_config
                    from ddc.config.schemas import ROLE_SCHEMAS

                    load_role_config(target, role, ROLE_SCHEMAS[role](), {}, document=document)
                elif role == "supervisor":
                    from ddc.config.loader import load_role_config
                    from ddc.supervisor.config import SupervisorSchema

                    load_role_config(target, role, SupervisorSchema(), {}, document=document)
                elif role == "dedup":
                    dedup_config = pytest.importorskip("dedup_service.config")
                    dedup_config.load_dedup_config(None, {}, document=document)
                checked += 1
    assert checked == 4
