"""`scripts/chaos` for two minutes: the redundant stack (two pairs, two diode relays, the dedup
service, Redis with AOF, a Kafka target) under a steady 1,000 records/s while an egress, Redis,
the dedup service and an ingress are killed with SIGKILL in turn, 25 s apart, and restarted:
every record reaches the target (duplicates still happen across the Redis/dedup kills: counted,
bounded to 1 %)."""

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
    # duplicates at the target are not yet zero across a Redis or dedup-service kill (issue 13:
    # 97 of 120,000 in one run); they are reported here, and bounded so a regression shows
    print(f"duplicates reaching the target: {outcome.duplicates}")
    assert outcome.duplicates <= outcome.sent // 100
