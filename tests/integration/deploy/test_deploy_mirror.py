"""compose/config/redundant/mirror.py: the redundant stack's "source sends to both pairs"."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dedup_service.embedded import free_port
from tests.integration.streams import drain

MIRROR = Path(__file__).resolve().parents[3] / "compose" / "config" / "redundant" / "mirror.py"


def receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


@contextmanager
def mirror(listen: int, *options: str) -> Iterator[subprocess.Popen]:
    """mirror.py listening on `listen` with `options`, once it said it is mirroring (its socket
    is bound); killed, if it still runs, when the block ends."""
    argv = [sys.executable, str(MIRROR), "--listen", f"127.0.0.1:{listen}", *options]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if b"mirroring" in line:
                break
        yield process
    finally:
        process.kill()  # nothing happens to a process already waited for
        process.wait()


def test_every_datagram_reaches_both_pairs_and_generated_records_have_unique_ids():
    a, b = receiver(), receiver()
    listen = free_port(socket.SOCK_DGRAM)
    targets = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in (a, b)]
    options = ("--to", targets[0], "--to", targets[1], "--generate", "50", "--count", "20")
    with mirror(listen, *options) as process:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = [b"source datagram %d" % i for i in range(5)]
        for payload in sent:
            sender.sendto(payload, ("127.0.0.1", listen))
        assert process.wait(10) == 0
        for sock in (a, b):
            got = drain(sock, idle=0.5)
            generated = [json.loads(p) for p in got if p.startswith(b"{")]
            assert [p for p in got if not p.startswith(b"{")] == sent
            assert [r["seq"] for r in generated] == list(range(1, 21))
            assert len({r["id"] for r in generated}) == 20


def summary(stderr: bytes) -> dict:
    """The JSON counts of the mirror's "stopped:" line."""
    (line,) = [ln for ln in stderr.decode().splitlines() if " mirror: stopped: " in ln]
    return json.loads(line.split(" mirror: stopped: ", 1)[1])


def test_sigterm_stops_it_at_once_with_counts_and_drops_to_a_dead_target_are_counted():
    """As PID 1 in a container, a mirror without a SIGTERM handler waits out `docker stop`'s
    grace period and is killed; a name that does not resolve drops datagrams silently."""
    import signal
    import time

    a = receiver()
    listen = free_port(socket.SOCK_DGRAM)
    target_a = f"127.0.0.1:{a.getsockname()[1]}"
    process = subprocess.Popen(
        [
            sys.executable,
            str(MIRROR),
            "--listen",
            f"127.0.0.1:{listen}",
            "--to",
            target_a,
            "--to",
            "no-such-pair.invalid:7120",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if b"mirroring" in line:
                break
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = [b"datagram %d" % i for i in range(200)]
        for payload in sent:
            sender.sendto(payload, ("127.0.0.1", listen))
        assert drain(a, idle=0.5) == sent
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
        assert time.monotonic() - started < 2
        counts = summary(process.stderr.read())
        assert counts["received"] == 200 and counts["kernel_drops"] == 0
        assert counts["sent"] == {target_a: 200, "no-such-pair.invalid:7120": 0}
        assert counts["dropped"] == {target_a: 0, "no-such-pair.invalid:7120": 200}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_name_is_resolved_once_not_per_datagram(monkeypatch):
    """Defect 2 of issue 15: a lookup per datagram (0.24 ms through Docker's DNS) capped the
    mirror near 2,000 datagrams/s. 1,000 datagrams to a name: one lookup; after a failed send,
    one more, and not again within the retry second."""
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("ddc_compose_mirror", MIRROR)
    assert spec is not None and spec.loader is not None
    mirror = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mirror)
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(mirror.socket, "getaddrinfo", counting)
    a = receiver()
    target = mirror.Target("ingress-a", a.getsockname()[1])
    relay = mirror.Mirror([target], None)
    for index in range(1000):
        relay.send(b"%d" % index)
    assert lookups == ["ingress-a"] and target.sent == 1000 and target.dropped == 0
    target.failed("send failed: test")  # within the retry second: dropped and counted
    for index in range(100):
        relay.send(b"failed %d" % index)
    assert lookups == ["ingress-a"] and target.sent == 1000 and target.dropped == 100
    later = time.monotonic() + mirror.RETRY_RESOLVE_S
    monkeypatch.setattr(mirror.time, "monotonic", lambda: later)
    for index in range(100):
        relay.send(b"after %d" % index)
    assert lookups == ["ingress-a", "ingress-a"] and target.sent == 1100
