"""The shipped cold-standby configs: a crashed ingress that comes back is accepted at once.

The egress pins its sender's address. The shipped configs give the ingress a fixed source port
(`bind`), so a restarted ingress (same host, same port) is the pinned sender and its StartUp is
accepted immediately; with port 0 it would be refused as foreign until the old address had been
silent for heartbeat_timeout. The shipped configs also authenticate (a key file as a secret):
then the session, not the address, is the sender, and the new session's StartUp is accepted
from any port. Run with the shipped compose config, addresses moved to loopback, the key file
a temporary one.
"""

from __future__ import annotations

import socket
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from ddc.config import load_config
from ddc.config.loader import load_role_config
from ddc.config.schemas import IngressSchema
from ddc.protocol.auth_keys import new_key_line
from dedup_service.embedded import free_port
from devtools.harness import Daemon, wait_until, write_toml
from tests.integration.streams import read_length_prefixed, send_udp

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "config" / "cold-standby"
pytestmark = pytest.mark.timeout(90)


def k8s_ingress_config() -> dict:
    for document in yaml.safe_load_all((ROOT / "k8s" / "ingress.yaml").read_text()):
        if document and document.get("kind") == "ConfigMap":
            raw = tomllib.loads(document["data"]["ingress.toml"])
            return load_role_config(None, "ingress", IngressSchema(), {}, document=raw)
    raise AssertionError("no ingress ConfigMap in k8s/ingress.yaml")


def test_shipped_cold_standby_ingresses_have_a_fixed_source_port():
    compose = load_config(COMPOSE / "ingress.toml", "ingress", environ={})
    assert compose["transport"]["bind"][1] != 0
    assert k8s_ingress_config()["transport"]["bind"][1] != 0


def port_if_free(port: int) -> int:
    """`port` (UDP, loopback) if nothing uses it here, else a free one: what matters is that
    it stays the same across the restart."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
        return port
    except OSError:
        return free_port(socket.SOCK_DGRAM)
    finally:
        probe.close()


def shipped_pair(
    tmp_path: Path, bind_port: int | None, auth: bool = True
) -> tuple[Daemon, Daemon, int, Path]:
    """Daemons of the shipped cold-standby configs on loopback (bind_port None: as shipped;
    auth False: without the shipped `auth_keys`)."""
    ingress = tomllib.loads((COMPOSE / "ingress.toml").read_text())["ingress"]
    egress = tomllib.loads((COMPOSE / "egress.toml").read_text())["egress"]
    keys = tmp_path / "link_auth_keys"
    keys.write_text(new_key_line(1) + "\n")
    keys.chmod(0o600)
    for transport in (ingress["transport"], egress["transport"]):
        assert transport.pop("auth_keys") == "/run/secrets/link_auth_keys"  # as shipped
        if auth:
            transport["auth_keys"] = str(keys)
    link, source = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    shipped_port = int(ingress["transport"]["bind"].rsplit(":", 1)[1])
    port = port_if_free(shipped_port) if bind_port is None else bind_port
    in_http, eg_http = free_port(), free_port()
    out = tmp_path / "records.bin"
    ingress_tables = {
        "ingress": {k: v for k, v in ingress.items() if not isinstance(v, dict)},
        "ingress.source": {**ingress["source"], "listen": f"127.0.0.1:{source}"},
        "ingress.transport": {
            **ingress["transport"],
            "destination": f"127.0.0.1:{link}",
            "bind": f"127.0.0.1:{port}",
        },
    }
    ingress_tables["ingress"]["http_listen"] = f"127.0.0.1:{in_http}"
    egress_tables = {
        "egress": {**{k: v for k, v in egress.items() if not isinstance(v, dict)}},
        "egress.transport": {**egress["transport"], "listen": f"127.0.0.1:{link}"},
        "egress.sink": {**egress["sink"], "path": str(out)},
    }
    egress_tables["egress"]["http_listen"] = f"127.0.0.1:{eg_http}"
    in_config = write_toml(tmp_path / "ingress.toml", ingress_tables)
    eg_config = write_toml(tmp_path / "egress.toml", egress_tables)
    return (
        Daemon("ingress", in_config, in_http, tmp_path / "ingress.log"),
        Daemon("egress", eg_config, eg_http, tmp_path / "egress.log"),
        source,
        out,
    )


@pytest.mark.parametrize(
    "bind, auth", [("shipped", True), ("port 0", True), ("shipped", False), ("port 0", False)]
)
def test_crashed_ingress_is_accepted_at_once_with_the_shipped_bind(tmp_path, bind, auth):
    ingress, egress, source, out = shipped_pair(tmp_path, None if bind == "shipped" else 0, auth)
    egress.start()
    try:
        ingress.start()
        wait_until(lambda: egress.health()["link_up"], 10, message="link up")
        send_udp(source, [b"before %d" % i for i in range(100)])
        wait_until(lambda: len(read_length_prefixed(out)) == 100, 10, message="first 100")
        ingress.kill()  # a crash: no Shutdown, the egress still holds the old address
        ingress.start()
        send_udp(source, [b"after %d" % i for i in range(100)])
        time.sleep(2.0)  # well inside heartbeat_timeout (5 s): the old address still pinned
        delivered = read_length_prefixed(out)
        foreign = egress.metric("ddc_egress_foreign_packets_total")
    finally:
        ingress.stop()
        egress.stop()
    if bind == "shipped" or auth:
        assert delivered == [b"before %d" % i for i in range(100)] + [
            b"after %d" % i for i in range(100)
        ]
        assert foreign == 0
    else:  # what the fixed port avoids: the restarted ingress is refused for a while
        assert len(delivered) < 200 and foreign > 0
