"""Against a real 3-node Redis Cluster (Valkey in cluster mode): every script stays in one slot."""

from __future__ import annotations

import random
import socket
import time
import uuid

import pytest
import redis

from dedup_service import lua
from dedup_service.app import create_app
from dedup_service.config import load_dedup_config
from dedup_service.embedded import EmbeddedRedis
from dedup_service.redis_client import connect
from dedup_service.store import Store
from devtools.harness import wait_until
from tests.integration.dedup.conftest import API_TOKEN, write_token


def low_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = random.randint(20000, 50000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue


class ClusterNode(EmbeddedRedis):
    def options(self) -> dict[str, str]:
        return {
            **super().options(),
            "--cluster-enabled": "yes",
            "--cluster-config-file": str(self.data_dir / "nodes.conf"),
        }


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    nodes_up: list[ClusterNode] = []
    try:
        for _ in range(3):
            port = low_port()
            node = ClusterNode(port, tmp_path_factory.mktemp(f"node{port}"), appendonly=False)
            nodes_up.append(node)
            node.start(10)
        nodes = [redis.Redis(port=node.port) for node in nodes_up]
        third = 16384 // 3
        for index, node in enumerate(nodes):
            last = 16383 if index == 2 else (index + 1) * third - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", index * third, last)
        for other in nodes_up[1:]:
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", other.port)
        wait_until(
            lambda: all(
                b"cluster_state:ok" in node.execute_command("CLUSTER", "INFO") for node in nodes
            ),
            20,
            interval=0.1,
            message="the cluster to form",
        )
        yield f"redis://127.0.0.1:{nodes_up[0].port}/0", nodes
    finally:
        for node in nodes_up:
            node.kill()


def test_store_on_a_cluster(cluster_url):
    url, nodes = cluster_url
    store = Store(
        connect(url, cluster=True), prefix="c" + uuid.uuid4().hex[:6], window=60, pending_timeout=30
    )
    ids = [f"id-{i}" for i in range(3000)]
    token = store.new_token()
    store.link_bit("b")  # served: a commit lists what link b's copy has not reached yet
    assert set(store.claim("a", ids, ["f"] * 3000, token, pending=True)) == {lua.FIRST}
    assert set(store.commit("a", ids, ["f"] * 3000, token)) == {lua.COMMITTED}
    assert set(store.claim("b", ids, ["f"] * 3000, store.new_token(), pending=False)) == {
        lua.DUPLICATE
    }
    assert store.lookup("id-7").links_mask == 0b11
    assert store.pop_due(int(time.time() * 1000) + 1000, 0b11) == (3000, [])
    assert all(node.dbsize() > 0 for node in nodes), "claims should spread over every node"


def test_api_on_a_cluster(cluster_url, tmp_path):
    url, _ = cluster_url
    document = {
        "dedup": {
            "redis_url": url,
            "redis_cluster": True,
            "key_prefix": "api" + uuid.uuid4().hex[:6],
            "links": ["a", "b"],
            "api_token_file": str(write_token(tmp_path / "api.token")),
            "sink": {"type": "file", "path": str(tmp_path / "out.bin"), "framing": "lines"},
        }
    }
    client = create_app(load_dedup_config(None, {}, document=document)).test_client()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    first = client.post(
        "/v1/records", json={"link": "a", "records": [{"id": "x", "value": "dg=="}]}, headers=auth
    )
    assert first.get_json()["results"] == ["first"]
    again = client.post(
        "/v1/records", json={"link": "b", "records": [{"id": "x", "value": "dg=="}]}, headers=auth
    )
    assert again.get_json()["results"] == ["duplicate"]
    assert client.get("/v1/ids/x").get_json()["links"] == ["a", "b"]
    assert client.get("/v1/stats").get_json()["links"]["a"]["first"] == 1
    assert (tmp_path / "out.bin").read_bytes() == b"v\n"
