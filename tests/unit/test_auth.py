"""Key files, the trailer and the StartUp payload codec (ddc.protocol.auth, auth_keys)."""

from __future__ import annotations

import pytest

from ddc.protocol import auth
from ddc.protocol.auth_keys import KeyFileError, KeySet, load_keys, new_key_line, parse_keys
from ddc.protocol.wire import encode_header

KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 140))
SID = b"\x01" * 8


def test_key_file_comments_blank_lines_and_last_line_signs():
    text = f"# rotation\n\n1:{KEY1.hex()}  # old\n  2 : {KEY2.hex()}\n"
    keys = parse_keys(text, "k.txt")
    assert keys.keys == {1: KEY1, 2: KEY2}
    assert keys.signing_id == 2 and keys.signing_key == KEY2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "k.txt: no key"),
        ("# only a comment\n", "k.txt: no key"),
        (f"1 {KEY1.hex()}", "k.txt:1: expected ID:HEX"),
        (f"\n256:{KEY1.hex()}", "k.txt:2: key id must be 0..255, got 256"),
        (f"x:{KEY1.hex()}", "k.txt:1: key id must be a number"),
        (f"-1:{KEY1.hex()}", "k.txt:1: key id must be a number"),
        ("1:zz" + KEY1.hex(), "k.txt:1: key is not hexadecimal"),
        ("1:" + bytes(31).hex(), "k.txt:1: key 1 has 31 bytes, at least 32"),
        (f"1:{KEY1.hex()}\n1:{KEY2.hex()}", "k.txt:2: key id 1 appears twice"),
    ],
)
def test_key_file_errors_name_the_line(text, message):
    with pytest.raises(KeyFileError) as error:
        parse_keys(text, "k.txt")
    assert str(error.value).startswith(message)
    assert KEY1.hex() not in str(error.value)  # never the key itself


def test_key_file_permissions_warn(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"7:{KEY1.hex()}\n")
    path.chmod(0o600)
    keys, warning = load_keys(path)
    assert keys.signing_id == 7 and warning is None
    path.chmod(0o640)
    _, warning = load_keys(path)
    assert warning is not None and "0640" in warning and str(path) in warning


def test_missing_key_file_is_one_clear_error(tmp_path):
    with pytest.raises(KeyFileError, match="key file not found"):
        load_keys(tmp_path / "absent")


def test_new_key_line_is_a_valid_key_with_32_random_bytes():
    line = new_key_line(9)
    keys = parse_keys(line)
    assert keys.signing_id == 9 and len(keys.signing_key) == 32
    assert new_key_line(9) != line
    with pytest.raises(KeyFileError):
        new_key_line(300)


def test_trailer_layout_and_verification():
    keys = KeySet.of({3: KEY1})
    body = encode_header(4, 17, 5, 0) + b"hello"
    signed = auth.Signer(keys, SID).sign(body)
    assert len(signed) == len(body) + auth.TRAILER_SIZE
    assert signed[len(body)] == 3
    assert signed[len(body) + 1 :] == auth.compute_tag(KEY1, SID, body, 3)
    verifier = auth.Verifier(keys, SID)
    assert verifier.valid(signed, len(signed))
    assert verifier.valid(signed + b"junk", len(signed))  # only datagram[:size] counts
    for index in range(len(signed)):  # every bit position matters
        forged = bytearray(signed)
        forged[index] ^= 0x01
        assert not verifier.valid(forged, len(forged))
    assert not auth.Verifier(keys, b"\x02" * 8).valid(signed, len(signed))  # other session


def test_startup_payload_round_trip():
    desc = auth.descriptor("pair-a", "records", 1472, (32, 8))
    payload = auth.encode_startup(SID, 1_700_000_000_123, desc)
    info = auth.decode_startup(payload)
    assert isinstance(info, auth.StartUpInfo)
    assert (info.session_id, info.start_time_ms) == (SID, 1_700_000_000_123)
    assert info.descriptor == {
        "name": "pair-a",
        "envelope": "records",
        "max_packet_size": 1472,
        "fec": [32, 8],
    }
    assert payload[8:16] == (1_700_000_000_123).to_bytes(8, "little")


@pytest.mark.parametrize(
    "payload",
    [
        b"short",
        SID + bytes(8) + (5).to_bytes(2, "little") + b"{}",  # length mismatch
        SID + bytes(8) + (2).to_bytes(2, "little") + b"\xff\xfe",
        SID + bytes(8) + (2).to_bytes(2, "little") + b"[]",
    ],
)
def test_malformed_startup_payloads_are_named(payload):
    assert isinstance(auth.decode_startup(payload), str)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": 5}, "name"),
        ({"envelope": "auto"}, "envelope"),
        ({"max_packet_size": 0}, "max_packet_size"),
        ({"max_packet_size": True}, "max_packet_size"),
        ({"fec": [1]}, "fec"),
        ({"fec": "32,8"}, "fec"),
    ],
)
def test_descriptor_problems(change, problem):
    desc = {**auth.descriptor("a", "raw", 1472), **change}
    assert problem in (auth.descriptor_problem(desc) or "")


def test_descriptor_requires_fec_even_when_null():
    desc = auth.descriptor("a", "raw", 1472)
    assert auth.descriptor_problem(desc) is None and desc["fec"] is None
    del desc["fec"]
    assert "fec" in (auth.descriptor_problem(desc) or "")


def test_session_ids_are_random():
    assert len({auth.new_session_id() for _ in range(100)}) == 100


def test_ddc_keygen_prints_one_key_line(capsys):
    from ddc.cli import main

    assert main(["keygen", "--id", "42"]) == 0
    line = capsys.readouterr().out.strip()
    keys = parse_keys(line)
    assert keys.signing_id == 42 and len(keys.signing_key) == 32
    assert main(["keygen", "--id", "256"]) == 2
    assert "--id must be 0..255" in capsys.readouterr().err
