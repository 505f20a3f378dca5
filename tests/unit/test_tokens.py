"""Control-route tokens (ddc.tokens) and the daemons' HTTP server guarding /admin/*, over real
sockets on loopback."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from ddc.errors import ConfigError
from ddc.http import HttpServer
from ddc.supervisor.client import request
from ddc.tokens import BAD_TOKEN, MISSING, NO_TOKEN, TokenGuard, read_token

TOKEN = "s3cret-token-0123456789"


def test_read_token_strips_and_checks(tmp_path, caplog):
    path = tmp_path / "t"
    path.write_text(f"  {TOKEN}\n")
    path.chmod(0o600)
    assert read_token(str(path), "k") == TOKEN and "accessible" not in caplog.text
    path.chmod(0o644)
    assert read_token(str(path), "k") == TOKEN and "accessible by group or others" in caplog.text
    for bad, problem in [("short", "at least 16"), ("has a space in it!!", "printable ASCII")]:
        path.write_text(bad)
        with pytest.raises(ConfigError, match=problem) as error:
            read_token(str(path), "ingress.admin_token_file")
        assert error.value.key == "ingress.admin_token_file"
    with pytest.raises(ConfigError, match="not found"):
        read_token(str(tmp_path / "absent"), "k")


def test_guard_decisions_are_counted_by_reason():
    refused: list[str] = []
    guard = TokenGuard(TOKEN, "[x] token_file", refused.append)
    assert guard.check(f"Bearer {TOKEN}") is None
    assert guard.check(None) == (401, "this route requires Authorization: Bearer <token>")
    assert guard.check(f"Basic {TOKEN}")[0] == 401
    assert guard.check("Bearer " + TOKEN[:-1])[0] == 401
    assert guard.check("Bearer " + TOKEN + "x")[0] == 401
    assert guard.check("Bearer \u00e9\u00e9")[0] == 401  # non-ASCII: refused, no exception
    assert refused == [MISSING, MISSING, BAD_TOKEN, BAD_TOKEN, BAD_TOKEN]
    closed = TokenGuard(None, "[ingress] admin_token_file", refused.append, what="/admin/*")
    status, message = closed.check(f"Bearer {TOKEN}")
    assert status == 403 and "set [ingress] admin_token_file" in message
    assert refused[-1] == NO_TOKEN


@pytest.fixture
def server():
    calls = []
    routes = {
        ("GET", "/healthz"): lambda: (200, {"status": "ok"}),
        ("POST", "/admin/pause"): lambda: calls.append("pause") or (200, {"paused": True}),
    }
    made = []

    def make(guard):
        srv = HttpServer(("127.0.0.1", 0), CollectorRegistry(), routes, guard=guard)
        srv.start()
        made.append(srv)
        return f"http://127.0.0.1:{srv.address[1]}", calls

    yield make
    for srv in made:
        srv.stop(0.5)


def test_admin_routes_need_the_token_and_metrics_healthz_stay_open(server):
    url, calls = server(TokenGuard(TOKEN, "[ingress] admin_token_file"))
    assert request("GET", url + "/healthz", 2).status == 200
    assert request("GET", url + "/metrics", 2).status == 200
    assert request("POST", url + "/admin/pause", 2).status == 401
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
    assert request("POST", url + "/admin/pause", 2, form).status == 401  # cross-site form POST
    assert request("POST", url + "/admin/pause", 2, {"Authorization": "Bearer nope"}).status == 401
    assert calls == []
    ok = request("POST", url + "/admin/pause", 2, {"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200 and ok.body == {"paused": True} and calls == ["pause"]


def test_without_a_guard_admin_routes_are_closed(server):
    url, calls = server(None)
    reply = request("POST", url + "/admin/pause", 2, {"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 403 and calls == []
