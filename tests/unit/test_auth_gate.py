"""The daemons' side of authentication: the egress gate (counts, root cause of a failing link,
reload), the persisted session a restarted egress resumes from, the ingress's signer reload."""

from __future__ import annotations

import logging
import time

from ddc.egress.auth_gate import AuthGate
from ddc.egress.auth_state import STATE_FILE, load_resume_point, save_session
from ddc.ingress.auth_sender import AuthSender
from ddc.protocol import auth
from ddc.protocol.auth_keys import KeySet, new_key_line
from ddc.protocol.auth_session import Expectations, Session
from ddc.protocol.wire import MessageType, encode_header

ADDRESS = ("127.0.0.1", 7005)


def key_file(tmp_path, *lines):
    path = tmp_path / "keys"
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(0o600)
    return str(path)


def sender(path) -> AuthSender:
    """An ingress started after the egress (a later millisecond: its session is newer)."""
    time.sleep(0.002)
    tx = AuthSender(path, "pair", "raw", 1472, None)
    tx.new_session()
    return tx


def gate_and_sender(tmp_path) -> tuple[str, AuthGate, AuthSender]:
    """A key file with one key, an egress gate keeping its state in tmp_path, and a sender."""
    path = key_file(tmp_path, new_key_line(1))
    gate = AuthGate(path, Expectations("raw"), 600.0, str(tmp_path))
    return path, gate, sender(path)


def signed(tx: AuthSender, kind: int, seq: int, payload: bytes = b"") -> memoryview:
    data = tx.signer.sign(encode_header(kind, seq, len(payload)) + payload)
    return memoryview(data)


def test_the_gate_counts_and_names_the_root_cause_of_a_failing_link(tmp_path):
    _, gate, tx = gate_and_sender(tmp_path)
    startup = signed(tx, MessageType.STARTUP, 0, tx.startup_payload())
    assert gate.check(startup, len(startup), ADDRESS) == "new_session"
    data = signed(tx, MessageType.DATA_FIRST, 0, b"x")
    assert gate.check(data, len(data), ADDRESS) == "accepted"
    assert gate.failing(accepted=2) is None
    forged = bytes(data[:-1]) + bytes([data[-1] ^ 1])
    for _ in range(3):
        assert gate.check(forged, len(forged), ADDRESS) is None
    assert gate.check(data, len(data), ADDRESS) is None  # replayed
    assert gate.failures == {"bad_tag": 3, "replay": 1}
    assert gate.failing(accepted=2) == "authentication failing (bad_tag)"
    assert gate.failing(accepted=2) is None  # nothing refused since
    assert gate.check(forged, len(forged), ADDRESS) is None
    assert gate.failing(accepted=3) is None  # something was accepted meanwhile


def test_the_session_is_persisted_and_a_restart_resumes_from_it(tmp_path):
    path, gate, tx = gate_and_sender(tmp_path)
    startup = signed(tx, MessageType.STARTUP, 0, tx.startup_payload())
    gate.check(startup, len(startup), ADDRESS)
    repeat = signed(tx, MessageType.STARTUP, 0, tx.startup_payload(repeat_seq=10))
    assert gate.check(repeat, len(repeat), ADDRESS) == "repeat"
    point = load_resume_point(str(tmp_path))
    assert point.session_id == tx.session_id and point.start_time_ms == tx.start_time_ms
    restarted = AuthGate(path, Expectations("raw"), 600.0, str(tmp_path))
    assert restarted.check(repeat, len(repeat), ADDRESS) is None  # seen before the restart
    fresh = signed(tx, MessageType.STARTUP, 0, tx.startup_payload(repeat_seq=12))
    assert restarted.check(fresh, len(fresh), ADDRESS) == "resumed_session"
    early = signed(tx, MessageType.DATA_FIRST, 11, b"x")
    assert restarted.check(early, len(early), ADDRESS) is None  # before the repeat's seq
    assert restarted.failures == {"stale_session": 1, "replay": 1}


def test_an_unreadable_state_file_falls_back_to_the_start_time(tmp_path, caplog):
    (tmp_path / STATE_FILE).write_text("{not json")
    with caplog.at_level(logging.ERROR):
        point = load_resume_point(str(tmp_path))
    assert point.session_id is None and point.start_time_ms == point.repeat_ms > 0
    assert "unreadable" in caplog.text
    assert load_resume_point("").session_id is None
    keys = KeySet.of({1: b"k" * 32})
    info = auth.StartUpInfo(b"s" * 8, 5, auth.descriptor("p", "raw", 1472))
    save_session("", Session(info, keys, 4096))  # no directory: nothing written, no error


def test_reload_keeps_the_old_keys_when_the_file_is_broken(tmp_path, caplog):
    path = key_file(tmp_path, new_key_line(1))
    gate = AuthGate(path, Expectations("raw"), 600.0, "")
    tx = sender(path)
    key_file(tmp_path, new_key_line(1), new_key_line(2))
    tx.reload()
    gate.reload()
    assert tx.key_id == 2 and sorted(gate.receiver.keys.keys) == [1, 2]
    (tmp_path / "keys").write_text("2:tooshort\n")
    with caplog.at_level(logging.ERROR):
        tx.reload()
        gate.reload()
    assert tx.key_id == 2 and sorted(gate.receiver.keys.keys) == [1, 2]
    assert caplog.text.count("not reloaded") == 2
