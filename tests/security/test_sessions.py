"""Sessions with authentication on: a captured session replayed after an ingress restart or to a
restarted egress delivers nothing; an old StartUp is `stale_session`; a second ingress holding
the key is refused and named; a restarted egress resumes the running session within a
heartbeat (docs/security.md "A restarted egress")."""

from __future__ import annotations

import json
import socket
import time
from contextlib import contextmanager

from dedup_service.embedded import free_port
from devtools.harness import wait_until
from tests.integration.streams import indexes, make_record, send_udp_paced
from tests.security.attacker import Tap
from tests.security.test_spoofing import failures

STARTUP = 1


@contextmanager
def tapped(auth_pairs):
    """A started pair whose ingress sends through a Tap (the attacker's capture), stopped after."""
    pair, collector = auth_pairs(start=False)
    tap = Tap(0, ("127.0.0.1", pair.link_port))
    tap.start()
    pair.destination_port = tap.sock.getsockname()[1]
    pair.start()
    try:
        yield pair, collector, tap
    finally:
        tap.stop()


def records(first: int, count: int) -> list[bytes]:
    return [make_record(i, 200) for i in range(first, first + count)]


def test_a_captured_session_replayed_after_an_ingress_restart_delivers_nothing(auth_pairs):
    with tapped(auth_pairs) as (pair, collector, tap):
        send_udp_paced(pair.source_port, records(0, 30), 2e6)
        collector.wait_for(30, timeout=20)
        pair.ingress.stop()
        captured = list(tap.captured)  # the whole first session, its Shutdown included
        pair.start_ingress()
        wait_until(lambda: pair.egress.metric("ddc_egress_startups_total") == 2, 10)
        send_udp_paced(pair.source_port, records(30, 30), 2e6)
        collector.wait_for(60, timeout=20)
        before = failures(pair.egress)["stale_session"]
        tap.replay(captured)
        wait_until(
            lambda: failures(pair.egress)["stale_session"] - before == len(captured),
            10,
            message="every replayed datagram refused as stale_session",
        )
        got = collector.wait_for(61, timeout=2, quiet=0.5)
        assert indexes(got) == list(range(60))  # nothing delivered twice
        assert pair.egress.health()["link_up"]
        assert failures(pair.egress)["bad_tag"] == 0


def test_an_old_startup_replayed_is_a_stale_session(auth_pairs):
    with tapped(auth_pairs) as (pair, collector, tap):
        old_startup = next(d for d in tap.captured if d[0] == STARTUP)
        pair.ingress.stop()
        pair.start_ingress()
        wait_until(lambda: pair.egress.metric("ddc_egress_startups_total") == 2, 10)
        session = pair.egress.health()["auth"]["session"]
        before = failures(pair.egress)["stale_session"]
        tap.replay([old_startup] * 5)
        wait_until(lambda: failures(pair.egress)["stale_session"] - before == 5, 10)
        send_udp_paced(pair.source_port, records(0, 20), 2e6)
        assert indexes(collector.wait_for(20, timeout=20)) == list(range(20))
        health = pair.egress.health()
        assert health["auth"]["session"] == session and health["link_up"]
        assert pair.egress.metric("ddc_egress_startups_total") == 2


def test_a_second_ingress_holding_the_key_is_refused_and_named(auth_pairs, tmp_path):
    pair, collector = auth_pairs()
    first_port = pair.sender_port
    send_udp_paced(pair.source_port, records(0, 10), 2e6)
    collector.wait_for(10, timeout=20)
    # a second ingress with the same key file, its own source and sender ports, same egress
    first = pair.ingress
    first_source = pair.source_port
    pair.source_port, pair.sender_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    pair.ingress_http = free_port()
    pair.name = "s0b"
    second = pair.start_ingress()
    pair.name = "s0"
    wait_until(lambda: pair.egress.metric("ddc_egress_startups_total") == 2, 10)
    send_udp_paced(first_source, records(100, 10), 2e6)  # through the older session
    send_udp_paced(pair.source_port, records(10, 10), 2e6)  # through the newer one
    got = collector.wait_for(20, timeout=20, quiet=1.0, settle=1.0)
    assert indexes(got) == list(range(20))  # nothing of the superseded session
    health = pair.egress.health()
    assert health["auth"]["second_sender"] == f"127.0.0.1:{first_port}"
    assert failures(pair.egress)["stale_session"] >= 10
    assert f"second sender: datagrams from 127.0.0.1:{first_port}" in pair.egress.log()
    first.stop()
    second.stop()


def test_a_restarted_egress_resumes_within_a_heartbeat_and_refuses_the_replayed_session(
    auth_pairs, tmp_path
):
    with tapped(auth_pairs) as (pair, collector, tap):
        send_udp_paced(pair.source_port, records(0, 30), 2e6)
        collector.wait_for(30, timeout=20)
        state = tmp_path / "spool-s0-egress" / "s0" / "auth-session"
        persisted = json.loads(state.read_text())
        assert persisted["session_id"] == pair.egress.health()["auth"]["session"]
        captured = list(tap.captured)
        tap.passing = False  # the genuine ingress is cut off while the attacker replays
        pair.egress.kill()
        pair.start_egress()
        tap.replay(captured)
        startups = sum(1 for datagram in captured if datagram[0] == STARTUP)
        wait_until(
            lambda: (
                failures(pair.egress)["stale_session"] == startups
                and pair.egress.health()["auth"]["held"] == len(captured) - startups
            ),
            10,
            message="the replayed StartUps refused, the rest held until a session begins",
        )
        assert sum(failures(pair.egress).values()) == startups
        assert pair.egress.health()["auth"]["session"] is None
        tap.passing = True
        started = time.monotonic()
        wait_until(lambda: pair.egress.health()["link_up"], 5, interval=0.02)
        assert time.monotonic() - started < 1.0  # a heartbeat is 0.2 s in these tests
        assert "session resumed" in pair.egress.log()
        # resumed from the persisted session: what was held may have been delivered before
        wait_until(lambda: failures(pair.egress)["stale_session"] == len(captured), 5)
        assert pair.egress.health()["auth"]["held"] == 0
        assert f"refused {len(captured) - startups} datagrams that arrived before" in (
            pair.egress.log()
        )
        send_udp_paced(pair.source_port, records(30, 30), 2e6)
        got = indexes(collector.wait_for(60, timeout=20))
        # the spool may deliver what it had not confirmed before the kill again; the replayed
        # session added nothing, and everything after the restart came once
        assert set(got) == set(range(60)) and got[-30:] == list(range(30, 60))


def test_a_replayed_burst_of_the_live_session_is_replay_and_delivered_once(auth_pairs):
    with tapped(auth_pairs) as (pair, collector, tap):
        send_udp_paced(pair.source_port, records(0, 40), 2e6)
        collector.wait_for(40, timeout=20)
        burst = [d for d in tap.captured if d[0] in (3, 4)]  # DataFirst, Data
        assert len(burst) == 40
        tap.replay(burst)
        wait_until(lambda: failures(pair.egress)["replay"] == 40, 10, message="40 replays")
        send_udp_paced(pair.source_port, records(40, 10), 2e6)
        assert indexes(collector.wait_for(50, timeout=20)) == list(range(50))
        assert pair.egress.metric("ddc_egress_packets_late_total") == 0  # refused before


def test_an_egress_that_starts_after_the_ingress_delivers_what_precedes_the_next_startup(
    auth_pairs,
):
    """The demo's and compose's concurrent start: the ingress's StartUp burst reaches no one;
    with a 5 s heartbeat the session begins only at the next repeat, and what came before it
    is held and delivered (on the code before the hold: refused as stale_session, lost)."""
    pair, collector = auth_pairs(start=False, transport={"heartbeat_interval": 5.0})
    pair.start_ingress()
    time.sleep(0.5)  # the burst is gone
    egress = pair.start_egress()
    send_udp_paced(pair.source_port, records(0, 200), 2e6)
    wait_until(lambda: egress.health()["auth"]["session"] is not None, 10, message="session")
    assert indexes(collector.wait_for(200, timeout=10)) == list(range(200))
    assert sum(failures(egress).values()) == 0
    assert egress.metric("ddc_egress_records_lost_total") == 0
    # held: 200 records and the HeartBeats between (unless a repeat came first, 1 run in ~50)
    assert "datagrams that arrived before the session began are checked" in egress.log()
