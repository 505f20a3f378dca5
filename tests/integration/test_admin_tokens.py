"""The ingress's /admin/* routes with real processes: the token is required, a cross-site form
POST is refused, a token-less ingress refuses every admin call and names the key to set."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import pytest

from devtools.harness import DDC, get_json
from devtools.harness.process import child_env


def post_status(url: str, headers: dict[str, str] | None = None, data: bytes = b"") -> int:
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_admin_routes_need_the_token(pairs):
    pair = pairs(source="udp", sink="udp").start()
    ingress = pair.ingress
    url = ingress.url("/admin/pause")
    assert post_status(url) == 401
    assert post_status(url, {"Authorization": "Bearer wrong-token-wrong-token"}) == 401
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
    assert post_status(url, form, b"paused=1") == 401  # what a cross-site form can send
    assert ingress.health()["paused"] is False and ingress.metric("ddc_ingress_paused") == 0
    metrics = ingress.metrics()
    assert metrics['ddc_ingress_admin_auth_failures_total{reason="missing"}'] == 2
    assert metrics['ddc_ingress_admin_auth_failures_total{reason="bad_token"}'] == 1
    assert ingress.post("/admin/pause") == {"paused": True}  # the harness sends the token
    assert ingress.post("/admin/resume") == {"paused": False}
    assert "control request refused (missing)" in ingress.log()


def test_without_admin_token_file_admin_routes_answer_403(pairs, tmp_path):
    pair = pairs(source="udp", sink="udp", ingress={"admin_token_file": None}).start()
    ingress = pair.ingress
    with pytest.raises(urllib.error.HTTPError) as refused:
        ingress.post("/admin/pause")
    assert refused.value.code == 403
    assert "set [ingress] admin_token_file" in refused.value.read().decode()
    assert get_json(ingress.url("/healthz"))["paused"] is False  # GET stays open
    assert (
        ingress.metric('ddc_ingress_admin_auth_failures_total{reason="no_token_configured"}') == 1
    )


def test_an_unreadable_token_file_is_a_config_error(pairs, tmp_path):
    (tmp_path / "short.token").write_text("short")
    pair = pairs(source="udp", sink="udp", ingress={"admin_token_file": "short.token"})
    done = subprocess.run(
        [*DDC, "ingress", "-c", str(pair.ingress_config())],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env({}),
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("config error: ingress.admin_token_file: the token in")
    )
