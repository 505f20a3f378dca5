"""`scripts/chaos` for two minutes: the redundant stack (two pairs, two diode relays, the dedup
service, Redis with AOF, a Kafka target) under a steady 1,000 records/s while an egress, Redis,
the dedup service and an ingress are killed with SIGKILL in turn, 25 s apart, and restarted:
every record reaches the target exactly once. A dedup-service kill between the broker's ack and
the claim's commit leaves claims that come back as re-forwards; the service's librdkafka sink
reads the target topic back for their ids, so none reaches the target twice."""

from __future__ import annotations

from devtools.chaos import parse_args, run_chaos

VICTIMS = ["egress-a", "redis", "dedup", "ingress-b"]


def test_two_minutes_of_kill_9_lose_and_duplicate_nothing(tmp_path):
    options = ["--minutes", "2", "--rate", "1000", "--interval", "25"]
    options += ["--victims", ",".join(VICTIMS), "--workdir", str(tmp_path)]
    outcome = run_chaos(parse_args(options))
    assert outcome.killed == VICTIMS
    assert outcome.sent == 120_000
    assert outcome.lost == 0
    assert outcome.duplicates == 0
