"""A Redis that requires a password (as the shipped stacks run it): the service sends AUTH with
the password from `redis_password_file`, and without it answers 503, never serving unclaimed."""

from __future__ import annotations

import pytest

from ddc.errors import ConfigError
from dedup_service.config import load_dedup_config
from dedup_service.embedded import EmbeddedRedis, free_port
from tests.integration.dedup.conftest import DedupServer, write_config, write_token

PASSWORD = "redis-test-password-0123456789"


class PasswordRedis(EmbeddedRedis):
    def options(self) -> dict[str, str]:
        return {**super().options(), "--requirepass": PASSWORD}


@pytest.fixture
def password_redis(tmp_path):
    server = PasswordRedis(data_dir=tmp_path / "redis", appendonly=False).start()
    yield server
    server.stop()


def serve(tmp_path, redis_url: str, password_file=None, name="dedup"):
    port = free_port()
    dedup = {
        "http_listen": f"127.0.0.1:{port}",
        "redis_url": redis_url,
        "api_token_file": str(write_token(tmp_path / "api.token")),
    }
    if password_file is not None:
        dedup["redis_password_file"] = str(password_file)
    config = write_config(
        tmp_path / f"{name}.toml", dedup, {"type": "file", "path": str(tmp_path / f"{name}.out")}
    )
    return DedupServer(f"http://127.0.0.1:{port}", config, tmp_path / f"{name}.log")


def test_the_password_from_the_secret_file_opens_redis(tmp_path, password_redis):
    password_file = write_token(tmp_path / "redis.password", PASSWORD)
    server = serve(tmp_path, password_redis.url, password_file).start()
    try:
        reply = server.post("/v1/claims", {"link": "a", "ids": ["order-1", "order-1"]})
        assert reply.status_code == 200
        assert reply.json()["results"] == ["first", "duplicate"]
    finally:
        server.stop()


def test_without_the_password_it_answers_503_and_names_the_cause(tmp_path, password_redis):
    server = serve(tmp_path, password_redis.url, name="nopass").start(ready=False)
    try:
        assert server.get("/readyz").status_code == 503
        reply = server.post("/v1/claims", {"link": "a", "ids": ["order-2"]})
        assert reply.status_code == 503
        assert "authenticat" in server.log().lower()  # the cause, named by the server's reply
    finally:
        server.stop()


def test_a_password_file_needs_a_redis_url(tmp_path):
    password_file = write_token(tmp_path / "redis.password", PASSWORD)
    config = write_config(
        tmp_path / "c.toml",
        {"redis_password_file": str(password_file)},
        {"type": "file", "path": str(tmp_path / "out")},
    )
    with pytest.raises(ConfigError) as caught:
        load_dedup_config(config)
    assert caught.value.key == "dedup.redis_password_file"
