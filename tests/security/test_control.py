"""The control surface: a cross-site form POST cannot pause the link, token-less admin and dedup
calls are refused, made-up dedup links leave no metric label and no state (real daemons, real
Redis)."""

from __future__ import annotations

import redis

from tests.integration.dedup.conftest import API_TOKEN
from tests.integration.streams import indexes, make_record, send_udp_paced
from tests.integration.test_admin_tokens import post_status

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
JSON = {"Content-Type": "application/json"}


def test_a_cross_site_form_post_cannot_pause_the_link(auth_pairs):
    pair, collector = auth_pairs()
    url = pair.ingress.url("/admin/pause")
    assert post_status(url, FORM, b"paused=1") == 401
    records = [make_record(i, 100) for i in range(1000)]
    send_udp_paced(pair.source_port, records, 2e6)
    assert indexes(collector.wait_for(1000, timeout=30)) == list(range(1000))
    health = pair.ingress.health()
    assert health["paused"] is False and pair.ingress.metric("ddc_ingress_records_total") == 1000
    failures = 'ddc_ingress_admin_auth_failures_total{reason="missing"}'
    assert pair.ingress.metric(failures) == 1


def test_token_less_admin_calls_are_refused(auth_pairs):
    pair, _ = auth_pairs(ingress={"admin_token_file": None})
    for route in ("/admin/pause", "/admin/resume"):
        assert post_status(pair.ingress.url(route)) == 403
    assert pair.ingress.health()["paused"] is False


def test_token_less_dedup_calls_cannot_pre_claim_an_id(dedup_server):
    server = dedup_server()
    claim = b'{"link": "evil", "ids": ["order-42"]}'
    assert post_status(f"{server.url}/v1/claims", JSON, claim) == 401
    assert post_status(f"{server.url}/v1/claims", FORM, b"link=a&ids=order-42") == 401
    genuine = b'{"link": "a", "ids": ["order-42"]}'
    assert post_status(f"{server.url}/v1/claims", JSON, genuine) == 401  # no token: no claim
    assert server.post("/v1/claims", {"link": "a", "ids": ["order-42"]}).json() == {
        "results": ["first"]
    }
    assert server.metric("ddc_dedup_api_auth_failures_total", reason="missing") == 3
    closed = dedup_server(api_token_file=None)
    assert post_status(f"{closed.url}/v1/claims", JSON, genuine) == 403


def test_unknown_dedup_links_leave_no_metric_label_and_no_state(dedup_server, redis_url):
    server = dedup_server()
    prefix = server.config_path.read_text().split('key_prefix = "')[1].split('"')[0]
    client = redis.Redis.from_url(redis_url)
    metrics_before = server.get("/metrics").text
    headers = {**JSON, "Authorization": f"Bearer {API_TOKEN}"}
    for index in range(300):
        body = f'{{"link": "evil-{index}", "ids": ["order-7"]}}'.encode()
        assert post_status(f"{server.url}/v1/claims", headers, body) == 400
    metrics_after = server.get("/metrics").text
    assert "evil" not in metrics_after
    assert len(metrics_after) - len(metrics_before) < 1000
    assert list(client.scan_iter(match=f"{prefix}*")) == []
    assert server.post("/v1/claims", {"link": "b", "ids": ["order-7"]}).json() == {
        "results": ["first"]
    }
