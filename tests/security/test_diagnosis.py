"""What an operator sees when authentication refuses a link: a wrong key is "link interrupted:
authentication failing (bad_tag)", not a silent link; a StartUp descriptor that contradicts the
egress config is named in one log line and in /healthz."""

from __future__ import annotations

from ddc.protocol.auth_keys import new_key_line
from devtools.harness import wait_until
from tests.integration.streams import make_record, send_udp_paced
from tests.security.conftest import write_keys
from tests.security.test_spoofing import failures


def test_a_wrong_key_is_reported_as_authentication_failing(auth_pairs, tmp_path):
    wrong = write_keys(tmp_path / "wrong.keys", new_key_line(1))  # same id, another key
    pair, collector = auth_pairs(start=False, transport={"auth_keys": str(wrong)})
    egress = pair.start_egress()
    pair.start_ingress()
    send_udp_paced(pair.source_port, [make_record(i, 100) for i in range(20)], 1e6)
    wait_until(
        lambda: egress.health()["link_down_reason"] == "authentication failing (bad_tag)",
        10,
        message="the link reported down for bad tags",
    )
    # the link can be reported down by the StartUp burst alone, before the records arrive
    wait_until(lambda: egress.health()["auth"]["held"] >= 20, 10, message="the records held")
    health = egress.health()
    assert health["status"] == "degraded" and not health["link_up"]
    counts = failures(egress)
    assert counts["bad_tag"] >= 200  # the StartUp burst (a StartUp carries its own session id)
    assert counts["stale_session"] == 0  # the data: no session to verify it with, so held
    assert health["auth"]["held"] >= 20  # (for the first session, should one begin)
    assert collector.records == []
    log = egress.log()
    assert log.count("link interrupted: authentication failing (bad_tag)") == 1
    assert log.count(": bad_tag (") == 1  # one line per reason per 10 s
    assert log.count(": stale_session (") == 0


def test_a_contradicting_descriptor_is_named_in_the_log_and_in_healthz(auth_pairs):
    pair, collector = auth_pairs(
        start=False, transport={"envelope": "records"}, egress_transport={"envelope": "raw"}
    )
    egress = pair.start_egress()
    pair.start_ingress()
    send_udp_paced(pair.source_port, [make_record(i, 100) for i in range(20)], 1e6)
    problem = "envelope: the ingress sends 'records', this egress is configured for 'raw'"
    wait_until(lambda: egress.health().get("auth_mismatch") == problem, 10)
    cause = "authentication failing (refused_session)"
    wait_until(lambda: egress.health()["link_down_reason"] == cause, 10)
    health = egress.health()
    assert health["status"] == "degraded" and health["auth"]["session"] is None
    assert collector.records == []
    log = egress.log()
    assert log.count("its StartUp contradicts this egress's config: " + problem) == 1
    assert "link interrupted: authentication failing (refused_session)" in log
