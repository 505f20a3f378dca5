"""The pause/resume decisions of one pair, fed with /healthz answers (no sockets)."""

from ddc.supervisor.client import Reply
from ddc.supervisor.monitor import DOWN, PAUSE, RESUME, PairMonitor, egress_problem

UP = Reply(200, {"status": "ok", "link_up": True, "last_packet_age_s": 0.2})
LINK_DOWN = Reply(200, {"status": "degraded", "link_up": False, "last_packet_age_s": 7.5})
GONE = Reply(error="ConnectionRefusedError: [Errno 111] Connection refused")
RUNNING = Reply(200, {"status": "ok", "paused": False})
PAUSED = Reply(200, {"status": "ok", "paused": True})


def test_egress_problem_reasons():
    assert egress_problem(UP) is None
    assert "unreachable" in egress_problem(GONE)
    assert "link down, last packet 7.5s ago" in egress_problem(LINK_DOWN)
    assert "no link_up" in egress_problem(Reply(200, {"status": "ok"}))
    # a non-200 answer that still says the link is up is not a reason to pause
    assert egress_problem(Reply(503, {"link_up": True}, error="HTTP 503")) is None


def test_pause_only_after_grace_then_once():
    monitor = PairMonitor("a", grace=2.0)
    assert monitor.observe(0.0, RUNNING, UP) == []
    assert monitor.observe(1.0, RUNNING, GONE) == []
    assert monitor.deadline() == 3.0
    assert monitor.observe(2.9, RUNNING, GONE) == []
    assert monitor.observe(3.0, RUNNING, GONE) == [DOWN, PAUSE]
    monitor.paused()
    assert monitor.deadline() is None
    assert monitor.observe(4.0, PAUSED, GONE) == []  # already paused, on_down not repeated


def test_failed_pause_is_retried_at_the_next_poll():
    monitor = PairMonitor("a", grace=0.0)
    assert monitor.observe(0.0, RUNNING, LINK_DOWN) == [DOWN, PAUSE]
    assert monitor.observe(1.0, RUNNING, LINK_DOWN) == [PAUSE]


def test_short_outage_below_grace_does_nothing():
    monitor = PairMonitor("a", grace=5.0)
    assert monitor.observe(0.0, RUNNING, GONE) == []
    assert monitor.observe(4.0, RUNNING, GONE) == []
    assert monitor.observe(4.5, RUNNING, UP) == []
    assert monitor.observe(6.0, RUNNING, GONE) == []  # a new outage starts its own grace
    assert monitor.deadline() == 11.0


def test_resume_only_what_we_paused():
    monitor = PairMonitor("a", grace=0.0)
    assert monitor.observe(0.0, PAUSED, UP) == []  # paused by an operator: not ours to resume
    assert monitor.observe(1.0, RUNNING, GONE) == [DOWN, PAUSE]
    monitor.paused()
    assert monitor.observe(2.0, PAUSED, UP) == [RESUME]
    monitor.resumed()
    assert monitor.observe(3.0, RUNNING, UP) == []


def test_restarted_ingress_is_paused_again_while_egress_still_down():
    monitor = PairMonitor("a", grace=0.0)
    assert monitor.observe(0.0, RUNNING, GONE) == [DOWN, PAUSE]
    monitor.paused()
    assert monitor.observe(1.0, GONE, GONE) == []  # ingress down too: nothing to pause
    assert monitor.observe(2.0, RUNNING, GONE) == [PAUSE]  # it came back unpaused


def test_ingress_restarted_unpaused_clears_our_pause():
    monitor = PairMonitor("a", grace=0.0)
    monitor.observe(0.0, RUNNING, GONE)
    monitor.paused()
    assert monitor.observe(1.0, RUNNING, UP) == []
    assert monitor.paused_by_us is False


def test_unreachable_ingress_cannot_be_paused_but_pair_is_declared_down():
    monitor = PairMonitor("a", grace=0.0)
    assert monitor.observe(0.0, GONE, GONE) == [DOWN]
    assert monitor.declared_down


SLOW = Reply(error="connected, but no answer within 2s", slow=True)


def test_slow_egress_is_slow_not_down_before_grace():
    monitor = PairMonitor("a", grace=5.0)
    assert monitor.observe(0.0, RUNNING, UP) == []
    # a busy egress answering late: no outage starts, nothing is paused
    for now in (1.0, 2.0, 3.0, 4.0, 5.9):
        assert monitor.observe(now, RUNNING, SLOW) == []
        assert monitor.down_since is None and monitor.problem is None
    assert monitor.deadline() == 6.0  # the poll that judges a slow egress comes on time
    assert monitor.observe(5.5, RUNNING, UP) == []  # it answered again: the slow run is over
    assert monitor.slow_since is None
    assert monitor.observe(7.0, RUNNING, SLOW) == []  # a new slow run has its own grace
    assert monitor.observe(11.9, RUNNING, SLOW) == []


def test_slow_for_grace_is_down_from_the_first_slow_answer():
    monitor = PairMonitor("a", grace=5.0)
    assert monitor.observe(1.0, RUNNING, SLOW) == []
    assert monitor.observe(6.0, RUNNING, SLOW) == [DOWN, PAUSE]
    assert monitor.down_since == 1.0
    assert "slow" in (monitor.problem or "")


def test_slow_answer_neither_ends_nor_restarts_an_outage():
    monitor = PairMonitor("a", grace=5.0)
    assert monitor.observe(0.0, RUNNING, GONE) == []
    assert monitor.observe(3.0, RUNNING, SLOW) == []  # not a recovery
    assert monitor.down_since == 0.0 and "unreachable" in (monitor.problem or "")
    assert monitor.observe(5.0, RUNNING, SLOW) == [DOWN, PAUSE]  # grace counted from 0.0
    monitor.paused()
    assert monitor.observe(6.0, PAUSED, SLOW) == []  # a slow answer does not resume either
    assert monitor.observe(7.0, PAUSED, UP) == [RESUME]
