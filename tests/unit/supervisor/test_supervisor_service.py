"""The supervisor against small real HTTP servers on loopback standing in for the proxies' /healthz.

The peers are test doubles over real sockets; the real proxies are exercised in
tests/integration/deploy/test_deploy_supervisor_failover.py.
"""

import time
from urllib.parse import urlsplit

import gevent
import pytest
from prometheus_client import CollectorRegistry

from ddc.http import HttpServer
from ddc.supervisor.client import _GeventConnection, request
from ddc.supervisor.config import load_supervisor_config
from ddc.supervisor.service import Supervisor
from ddc.tokens import TokenGuard

POLL, GRACE = 0.2, 0.6
SLACK = 0.5  # scheduling slack on a busy 2-core machine
TOKEN = "supervisor-test-token-0123"  # the ingresses' admin token; make_supervisor's token_file


class FakeIngress:
    def __init__(self, token=TOKEN):
        self.paused = False
        self.calls: list[tuple[str, float]] = []
        routes = {
            ("GET", "/healthz"): lambda: (
                200,
                {"status": "ok", "role": "ingress", "paused": self.paused},
            ),
            ("POST", "/admin/pause"): lambda: self._admin("pause", True),
            ("POST", "/admin/resume"): lambda: self._admin("resume", False),
        }
        guard = TokenGuard(token, "[ingress] admin_token_file")
        self.server = HttpServer(("127.0.0.1", 0), CollectorRegistry(), routes, guard=guard)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.address[1]}"

    def _admin(self, action, paused):
        self.calls.append((action, time.monotonic()))
        self.paused = paused
        return 200, {"paused": paused}

    def stop(self):
        self.server.stop(0.5)


class FakeEgress:
    def __init__(self, port=0):
        self.link_up = True
        self.delay = 0.0
        self.server = HttpServer(
            ("127.0.0.1", port), CollectorRegistry(), {("GET", "/healthz"): self._health}
        )
        self.server.start()
        self.port = self.server.address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _health(self):
        if self.delay:
            gevent.sleep(self.delay)  # a daemon busy at full load answers late
        status = "ok" if self.link_up else "degraded"
        return 200, {"status": status, "link_up": self.link_up, "last_packet_age_s": 0.1}

    def stop(self):
        self.server.stop(0.5)


def wait_for(predicate, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return predicate()


@pytest.fixture
def make_supervisor(tmp_path):
    started = []

    def make(pairs, hooks="", token_line='token_file = "admin.token"', grace=GRACE):
        (tmp_path / "admin.token").write_text(TOKEN)
        lines = [
            f'[supervisor]\nhttp_listen = "127.0.0.1:0"\npoll_interval = {POLL}\ngrace = {grace}\ntimeout = 0.5\n{token_line}\n'
        ]
        for name, ingress, egress in pairs:
            lines.append(
                f'[[supervisor.pairs]]\nname = "{name}"\ningress = "{ingress.url}"\negress = "{egress.url}"\n{hooks}\n'
            )
        path = tmp_path / "supervisor.toml"
        path.write_text("\n".join(lines))
        supervisor = Supervisor(load_supervisor_config(path, {}))
        supervisor.start()
        started.append(supervisor)
        return supervisor

    yield make
    for supervisor in started:
        supervisor.stop(2.0)


def supervisor_url(supervisor):
    return f"http://127.0.0.1:{supervisor.http.address[1]}"


def test_unreachable_egress_pauses_its_ingress_within_grace_plus_one_poll_then_resumes(
    make_supervisor, tmp_path
):
    ingress, egress = FakeIngress(), FakeEgress()
    log = tmp_path / "hooks.log"
    hooks = "\n".join(
        f"{event} = 'echo \"$DDC_EVENT $DDC_PAIR $DDC_REASON\" >> {log}'"
        for event in ("on_down", "on_pause", "on_resume")
    )
    supervisor = make_supervisor([("a", ingress, egress)], hooks)
    try:
        gevent.sleep(3 * POLL)
        assert ingress.calls == []  # healthy pair: nothing done
        health = request("GET", f"{supervisor_url(supervisor)}/healthz", 1.0)
        assert health.body["status"] == "ok" and health.body["pairs"]["a"]["egress_ok"] is True

        killed_at = time.monotonic()
        egress.stop()
        assert wait_for(lambda: ingress.calls, GRACE + POLL + 1.0)
        action, paused_at = ingress.calls[0]
        assert action == "pause"
        elapsed = paused_at - killed_at
        assert elapsed <= GRACE + POLL + SLACK, f"paused {elapsed:.2f}s after the egress went away"
        assert paused_at - killed_at >= GRACE - 0.05  # not before the grace period
        health = request("GET", f"{supervisor_url(supervisor)}/healthz", 1.0)
        assert health.body["status"] == "degraded"
        assert health.body["pairs"]["a"]["paused_by_supervisor"] is True
        assert "unreachable" in health.body["pairs"]["a"]["egress_problem"]

        gevent.sleep(3 * POLL)
        assert [call[0] for call in ingress.calls] == ["pause"]  # no repeated pause

        egress = FakeEgress(egress.port)  # the egress comes back on the same address
        assert wait_for(lambda: len(ingress.calls) == 2, POLL + 1.0)
        assert ingress.calls[1][0] == "resume" and ingress.paused is False

        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 3, 5.0)
        events = log.read_text().splitlines()
        assert [line.split()[:2] for line in events] == [
            ["down", "a"],
            ["pause", "a"],
            ["resume", "a"],
        ]
        assert "egress unreachable" in events[0]

        resumed = 'ddc_supervisor_hooks_total{event="on_resume",pair="a",result="ok"} 1.0'
        assert wait_for(lambda: resumed in _text(supervisor_url(supervisor) + "/metrics"), 5.0)
        text = _text(supervisor_url(supervisor) + "/metrics")
        assert 'ddc_supervisor_actions_total{action="pause",pair="a",result="ok"} 1.0' in text
        assert 'ddc_supervisor_actions_total{action="resume",pair="a",result="ok"} 1.0' in text
        assert 'ddc_supervisor_hooks_total{event="on_pause",pair="a",result="ok"} 1.0' in text
        assert 'ddc_supervisor_polls_total{pair="a",result="unreachable",side="egress"}' in text
    finally:
        ingress.stop()
        egress.stop()


def test_link_down_pauses_and_link_up_resumes_only_that_pair(make_supervisor):
    ingress_a, egress_a = FakeIngress(), FakeEgress()
    ingress_b, egress_b = FakeIngress(), FakeEgress()
    make_supervisor([("a", ingress_a, egress_a), ("b", ingress_b, egress_b)])
    try:
        egress_a.link_up = False
        assert wait_for(lambda: ingress_a.paused, GRACE + POLL + SLACK)
        egress_a.link_up = True
        assert wait_for(lambda: not ingress_a.paused, POLL + SLACK)
        assert [call[0] for call in ingress_a.calls] == ["pause", "resume"]
        assert ingress_b.calls == []
    finally:
        for server in (ingress_a, egress_a, ingress_b, egress_b):
            server.stop()


def test_flapping_shorter_than_grace_pauses_nothing(make_supervisor):
    ingress, egress = FakeIngress(), FakeEgress()
    make_supervisor([("a", ingress, egress)])
    try:
        for _ in range(3):
            egress.link_up = False
            gevent.sleep(GRACE / 3)
            egress.link_up = True
            gevent.sleep(2 * POLL)
        assert ingress.calls == []
    finally:
        ingress.stop()
        egress.stop()


def test_failing_hook_and_unreachable_ingress_are_survived(make_supervisor, tmp_path):
    ingress, egress = FakeIngress(), FakeEgress()
    supervisor = make_supervisor([("a", ingress, egress)], "on_down = 'echo boom; exit 3'")
    try:
        ingress.stop()
        egress.stop()
        assert wait_for(
            lambda: (
                'event="on_down",pair="a",result="failed"'
                in _text(supervisor_url(supervisor) + "/metrics")
            ),
            GRACE + 2.0,
        )
        gevent.sleep(2 * POLL)
        assert supervisor.crashed is None and not supervisor.stopping.is_set()
        health = request("GET", f"{supervisor_url(supervisor)}/healthz", 1.0).body["pairs"]["a"]
        assert health["ingress_reachable"] is False and health["paused_by_supervisor"] is False
    finally:
        ingress.stop()
        egress.stop()


def _text(url):
    """GET a Prometheus text page (the client module only speaks JSON)."""
    parts = urlsplit(url)
    connection = _GeventConnection(parts.hostname, parts.port, timeout=2.0)
    try:
        connection.request("GET", parts.path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def test_the_supervisor_sends_each_pairs_token(make_supervisor, tmp_path):
    """[supervisor] token_file is the default, a pair's own token_file overrides it; without
    the right token the ingress refuses the pause and the supervisor counts it failed."""
    (tmp_path / "b.token").write_text("pair-b-token-abcdefghij")
    ingress_a, egress_a = FakeIngress(), FakeEgress()
    ingress_b, egress_b = FakeIngress("pair-b-token-abcdefghij"), FakeEgress()
    ingress_c, egress_c = FakeIngress("another-token-abcdefghij"), FakeEgress()
    pairs = [("a", ingress_a, egress_a), ("b", ingress_b, egress_b), ("c", ingress_c, egress_c)]
    supervisor = make_supervisor(pairs)
    supervisor.stop(2.0)
    lines = [
        f'[supervisor]\nhttp_listen = "127.0.0.1:0"\npoll_interval = {POLL}\ngrace = {GRACE}\n'
        'timeout = 0.5\ntoken_file = "admin.token"\n'
    ]
    for name, ingress, egress in pairs:
        own = 'token_file = "b.token"\n' if name == "b" else ""
        lines.append(
            f'[[supervisor.pairs]]\nname = "{name}"\ningress = "{ingress.url}"\n'
            f'egress = "{egress.url}"\n{own}'
        )
    path = tmp_path / "tokens.toml"
    path.write_text("\n".join(lines))
    supervisor = Supervisor(load_supervisor_config(path, {}))
    supervisor.start()
    try:
        for egress in (egress_a, egress_b, egress_c):
            egress.link_up = False
        assert wait_for(lambda: ingress_a.paused and ingress_b.paused, GRACE + POLL + SLACK)
        failed = 'action="pause",pair="c",result="failed"'
        assert wait_for(lambda: failed in _text(supervisor_url(supervisor) + "/metrics"), 2.0)
        assert ingress_c.calls == [] and not ingress_c.paused
    finally:
        supervisor.stop(2.0)
        for server in (ingress_a, egress_a, ingress_b, egress_b, ingress_c, egress_c):
            server.stop()


def test_slow_egress_counts_as_slow_not_down_before_grace(make_supervisor):
    """An egress that takes the connection but answers after `timeout` (0.5 s) is slow: the
    pair stays healthy in the supervisor's view until that has lasted `grace`."""
    ingress, egress = FakeIngress(), FakeEgress()
    egress.delay = 0.8
    supervisor = make_supervisor([("a", ingress, egress)], grace=3.0)
    url = supervisor_url(supervisor)
    try:
        slow = 'ddc_supervisor_polls_total{pair="a",result="slow",side="egress"}'
        assert wait_for(lambda: _sample(url, slow) >= 2, 3.0)
        health = request("GET", f"{url}/healthz", 1.0).body
        assert health["status"] == "ok", health
        view = health["pairs"]["a"]
        assert view["egress_ok"] is True and view["egress_slow"] is True
        assert view["down_for_s"] is None and view["egress_problem"] is None
        assert _sample(url, 'ddc_supervisor_egress_healthy{pair="a"}') == 1.0
        assert (
            _sample(url, 'ddc_supervisor_polls_total{pair="a",result="unreachable",side="egress"}')
            == 0
        )
        assert ingress.calls == []
        # still slow at grace: down, dated from the first slow answer, and paused
        assert wait_for(lambda: ingress.calls, 3.0 + 1.0 + SLACK)
        assert ingress.calls[0][0] == "pause"
        assert "slow" in request("GET", f"{url}/healthz", 1.0).body["pairs"]["a"]["egress_problem"]
    finally:
        ingress.stop()
        egress.stop()


def _sample(url, name):
    for line in _text(url + "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
