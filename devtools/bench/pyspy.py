"""py-spy profiles of running processes for the benches: the top functions of each.

`record({name: pid}, seconds)` samples every process at once (`py-spy record --format raw`, one
py-spy per process, idle greenlets left out) and returns, per process, the functions ranked by
own samples (where the CPU went) with their inclusive share. `python -m devtools.bench.pyspy
RAWFILE` prints the summary of a saved raw file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Profile:
    samples: int
    own: Counter[str]  # function → samples where it was on top of the stack
    inclusive: Counter[str]  # function → samples where it was anywhere on the stack

    def top(self, count: int = 12) -> list[tuple[str, float, float]]:
        """(function, own %, inclusive %) of the `count` functions with the most own samples."""
        total = max(self.samples, 1)
        return [
            (name, 100 * own / total, 100 * self.inclusive[name] / total)
            for name, own in self.own.most_common(count)
        ]

    def top_inclusive(self, count: int = 12, below: float = 90.0) -> list[tuple[str, float]]:
        """(function, inclusive %) of the `count` widest functions under `below` % (the roots
        of every stack, a greenlet's run and the like, are left out)."""
        total = max(self.samples, 1)
        ranked = [(name, 100 * n / total) for name, n in self.inclusive.most_common()]
        return [(name, share) for name, share in ranked if share < below][:count]


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def parse_raw(text: str) -> Profile:
    """py-spy's raw (collapsed stacks) output: `frame;frame;... count` per line."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        count = int(number)
        frames = [_short(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return Profile(samples, own, inclusive)


def _short(frame: str) -> str:
    """`run (ddc/egress/receiver.py:78)` → `run (egress/receiver.py:78)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])}:{line})" if path else name


def record(pids: dict[str, int], seconds: float, rate: int = 100) -> dict[str, Profile]:
    """Profiles of every process, sampled together for `seconds` (empty without py-spy)."""
    binary = py_spy()
    if binary is None:
        return {}
    work = Path(tempfile.mkdtemp(prefix="ddc-pyspy-"))
    running = {
        name: subprocess.Popen(
            [binary, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", str(rate)]
            + ["-f", "raw", "-o", str(work / f"{name}.raw"), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }
    profiles = {}
    for name, process in running.items():
        process.wait(seconds + 30)
        path = work / f"{name}.raw"
        if path.exists():
            profiles[name] = parse_raw(path.read_text())
    shutil.rmtree(work, ignore_errors=True)
    return profiles


def record_later(
    pids: dict[str, int], delay: float, seconds: float, into: dict[str, Profile]
) -> threading.Thread:
    """`record` in a thread after `delay` s, the profiles put `into` the dict (join it)."""

    def run() -> None:
        time.sleep(delay)
        into.update(record(pids, seconds))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def report(profiles: dict[str, Profile], count: int = 12) -> str:
    lines = []
    for name, profile in profiles.items():
        lines.append(f"{name}: {profile.samples} samples; own % / inclusive %")
        for function, own, inclusive in profile.top(count):
            lines.append(f"  {own:5.1f} {inclusive:5.1f}  {function}")
        lines.append(f"{name}: widest (inclusive %)")
        for function, inclusive in profile.top_inclusive(count):
            lines.append(f"        {inclusive:5.1f}  {function}")
    return "\n".join(lines)


if __name__ == "__main__":
    for raw in sys.argv[1:]:
        print(report({raw: parse_raw(Path(raw).read_text())}, 20))
