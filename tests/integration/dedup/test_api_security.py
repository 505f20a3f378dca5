"""The dedup API's control surface against a real `ddc-dedup serve` and real Redis: every POST
needs the token, and a link not declared in [dedup] links leaves no trace (no metric label, no
Redis state)."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import redis
import requests

from tests.integration.dedup.conftest import API_TOKEN

CLAIM = {"link": "a", "ids": ["order-42"]}
HEADERS = {
    "Content-Type": "application/json",
    "Authorization": f"Bearer {API_TOKEN}",
    "Connection": "close",
}


def post_unknown(port: int, part: int) -> list[int]:
    """250 POSTs (claims and records alternately) each naming a new link; their statuses."""
    statuses = []
    for index in range(part * 125, (part + 1) * 125):
        for path, body in (
            ("/v1/claims", {"link": f"evil-{index}", "ids": ["order-7"]}),
            ("/v1/records", {"link": f"evil-{index}", "records": [{"id": "r", "value": "dg=="}]}),
        ):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", path, json.dumps(body).encode(), HEADERS)
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            finally:
                connection.close()
    return statuses


def test_posts_need_the_token_and_reads_stay_open(dedup_server, redis_url):
    server = dedup_server()
    bare = requests.Session()
    assert bare.post(server.url + "/v1/claims", json=CLAIM, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + API_TOKEN[:-1] + "x"}
    assert bare.post(server.url + "/v1/claims", json=CLAIM, headers=wrong).status_code == 401
    # a browser's cross-site form POST carries no Authorization header
    form = bare.post(
        server.url + "/v1/claims",
        data={"link": "a", "ids": "order-42"},
        headers={"Origin": "http://evil.example"},
        timeout=10,
    )
    assert form.status_code == 401 and form.json()["code"] == "unauthorized"
    records = {"link": "a", "records": [{"id": "order-42", "value": "dg=="}]}
    assert bare.post(server.url + "/v1/records", json=records, timeout=10).status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/v1/stats", "/openapi.json"):
        assert bare.get(server.url + path, timeout=10).status_code == 200, path
    assert bare.get(server.url + "/v1/ids/order-42", timeout=10).status_code == 404  # unclaimed
    assert server.metric("ddc_dedup_api_auth_failures_total", reason="missing") == 3
    assert server.metric("ddc_dedup_api_auth_failures_total", reason="bad_token") == 1
    assert server.post("/v1/claims", CLAIM).json()["results"] == ["first"]  # the genuine claim
    assert "control request refused (missing)" in server.log()


def test_without_a_token_file_every_post_is_refused_and_says_which_key(dedup_server):
    server = dedup_server(api_token_file=None)
    answer = requests.post(
        server.url + "/v1/claims",
        json=CLAIM,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert "set [dedup] api_token_file" in answer.json()["message"]
    assert server.metric("ddc_dedup_api_auth_failures_total", reason="no_token_configured") == 1


def test_undeclared_links_leave_no_metric_label_and_no_redis_state(dedup_server, redis_url):
    """1,000 POSTs naming new links: all 400, /metrics and Redis exactly as before (the
    issue's 20,000 grew /metrics by 4.7 MiB on the old code; 1,000 would grow it by ~240 KiB
    against the 2,000 bytes allowed below and a new series per link; 5,000 took 54 s of the
    suite)."""
    server = dedup_server()
    assert server.post("/v1/claims", CLAIM).json()["results"] == ["first"]
    prefix = server.config_path.read_text().split('key_prefix = "')[1].split('"')[0]
    client = redis.Redis.from_url(redis_url)

    def state() -> dict[bytes, object]:
        return {key: client.dump(key) for key in client.scan_iter(match=f"{prefix}*")}

    redis_before = state()
    metrics_before = server.get("/metrics").text
    port = int(server.url.rsplit(":", 1)[1])
    # one connection per request: on a kept-alive connection each answer of the gevent WSGI
    # server waits ~40 ms for a delayed ACK; 4 clients at once
    statuses = Counter(
        status
        for part in ThreadPoolExecutor(4).map(lambda k: post_unknown(port, k), range(4))
        for status in part
    )
    assert statuses == {400: 1_000}
    metrics_after = server.get("/metrics").text
    assert "evil" not in metrics_after
    # no new series but the request counters of the routes called (fixed labels)

    def series(text: str) -> set[str]:
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}

    new = {name.split("{")[1] for name in series(metrics_after) - series(metrics_before)}
    assert new <= {
        'route="/v1/claims",status="400"}',
        'route="/v1/records",status="400"}',
        'route="/metrics",status="200"}',
    }, new
    assert len(metrics_after) - len(metrics_before) < 2000
    # background work of the one genuine claim (stats, divergence) may move; nothing names evil
    redis_after = state()
    assert not any(
        b"evil" in key or b"evil" in (value or b"") for key, value in redis_after.items()
    )
    assert len(redis_after) <= len(redis_before) + 1  # + the stats of the genuine claim at most
    # the genuine record of link b is still a first copy on b's side, not pre-claimed
    answer = server.post("/v1/claims", {"link": "b", "ids": ["order-7"]})
    assert answer.json()["results"] == ["first"]
    unknown = server.post("/v1/claims", {"link": "zzz", "ids": ["x"]}).json()
    assert unknown["code"] == "unknown_link" and "a, b, c" in unknown["errors"]["link"][0]
