"""`ddc-dedup`: help, config errors (exit 2, one line), embedded Redis, start-up warnings."""

from __future__ import annotations

import signal
import subprocess
import sys

import redis

from dedup_service.embedded import EmbeddedRedis, free_port
from tests.integration.dedup.conftest import (
    ROOT,
    DedupServer,
    subprocess_env,
    write_config,
    write_token,
)


def run_cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "dedup_service.cli", *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help():
    top = run_cli("--help")
    assert top.returncode == 0 and "serve" in top.stdout
    serve = run_cli("serve", "--help")
    assert serve.returncode == 0 and "--config" in serve.stdout


def test_invalid_config_one_line_exit_2(tmp_path):
    config = write_config(tmp_path / "bad.toml", {"window": "0s"}, {"type": "file", "path": "x"})
    result = run_cli("serve", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr == "config error: dedup.window: must be greater than 0\n"
    bad_sink = write_config(tmp_path / "sink.toml", {}, {"type": "carrier-pigeon"})
    result = run_cli("serve", "-c", str(bad_sink))
    assert result.returncode == 2
    assert result.stderr.startswith("config error: dedup.sink.type: must be one of")
    missing = run_cli("serve", "-c", str(tmp_path / "absent.toml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_port_in_use_is_a_config_error(tmp_path, redis_url):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(
            tmp_path / "d.toml",
            {"http_listen": f"127.0.0.1:{port}", "redis_url": redis_url},
            {"type": "file", "path": str(tmp_path / "o")},
        )
        result = run_cli("serve", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "config error: dedup.http_listen: cannot listen"
    )


def test_embedded_redis_keeps_claims_in_data_dir_across_restarts(tmp_path):
    port = free_port()
    write_token(tmp_path / "api.token")
    config = write_config(
        tmp_path / "d.toml",
        {"http_listen": f"127.0.0.1:{port}", "data_dir": "state", "api_token_file": "api.token"},
        {"type": "file", "path": "out.bin"},
    )
    server = DedupServer(f"http://127.0.0.1:{port}", config, tmp_path / "d.log").start()
    try:
        assert server.post("/v1/claims", {"link": "a", "ids": ["kept"]}).json()["results"] == [
            "first"
        ]
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
        assert (tmp_path / "state" / "appendonlydir").is_dir()
        server.start()
        assert server.post("/v1/claims", {"link": "b", "ids": ["kept"]}).json()["results"] == [
            "duplicate"
        ]
        assert "embedded Redis on" in server.log()
    finally:
        server.stop()


def test_startup_warns_when_redis_could_lose_claims(dedup_server, tmp_path):
    own = EmbeddedRedis(data_dir=tmp_path / "r", appendonly=False).start()
    try:
        redis.Redis.from_url(own.url).config_set("maxmemory-policy", "allkeys-lru")
        server = dedup_server(redis_url=own.url)
        log = server.log()
        assert "maxmemory-policy is 'allkeys-lru'" in log
        assert "persistence is off" in log
    finally:
        own.cleanup()
