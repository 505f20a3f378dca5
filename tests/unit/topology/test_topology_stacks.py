"""The project's own stacks and configs pass `ddc topology check` (the CLI is run in tests/integration/deploy)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STACKS = ["single-pair", "multi-pair", "redundant", "kafka-group", "cold-standby"]
PAIRS = {"single-pair": 1, "multi-pair": 2, "redundant": 2, "kafka-group": 2, "cold-standby": 1}


@pytest.mark.parametrize("stack", STACKS)
def test_compose_stack_passes(check, stack):
    code, out, _ = check(ROOT / "compose" / f"{stack}.yml")
    assert code == 0, out
    assert f"topology check OK: {PAIRS[stack]} link pair(s)" in out


def test_all_stacks_and_their_configs_together(check):
    """Every pair in every stack has a port of its own, so even all the TOMLs at once pass."""
    code, out, _ = check(*(ROOT / "compose" / f"{stack}.yml" for stack in STACKS), ROOT / "k8s")
    assert code == 0, out
    code, out, _ = check(ROOT / "compose" / "config")
    assert code == 0, out
    assert "topology check OK: 8 link pair(s), 8 ingress(es), 8 egress(es)" in out
