"""The runtime wheel holds the runtime only: ddc/ and dedup_service/ modules and their metadata.

The dev tools (demo, benchmarks, the process harness, the embedded broker) and the tests run
from a checkout; none of them may ship in the wheel the Docker image installs.
"""

from __future__ import annotations

import shutil
from pathlib import PurePosixPath

from devtools import ROOT
from devtools.harness.wheels import built_wheel, pip_wheel

RUNTIME_PACKAGES = {"ddc", "dedup_service"}
DEV_ONLY = {
    "devtools",
    "tests",
    "demo.py",
    "bench",
    "harness",
    "embedded_kafka.py",
    "diode_sim_thread.py",
    "scripts",
}
# what a checkout may hold besides the source: an in-tree build writes build/ and *.egg-info
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    ".*_cache",
    ".hypothesis",
)


def build_wheel(tmp_path) -> list[str]:
    """The file list of a wheel built from a copy of this checkout."""
    source, out = tmp_path / "source", tmp_path / "dist"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    options = ("--no-build-isolation", "--disable-pip-version-check")
    result = pip_wheel(source, out, *options, timeout=120)
    assert result.returncode == 0, result.stderr
    with built_wheel(out) as archive:
        return archive.namelist()


def test_wheel_holds_only_the_runtime_packages(tmp_path):
    names = build_wheel(tmp_path)
    paths = [PurePosixPath(name) for name in names]
    metadata = {path.parts[0] for path in paths if path.parts[0].endswith(".dist-info")}
    assert len(metadata) == 1, metadata
    tops = {path.parts[0] for path in paths} - metadata
    assert tops == RUNTIME_PACKAGES
    code = [path for path in paths if path.parts[0] in RUNTIME_PACKAGES]
    assert {path.suffix for path in code} <= {".py", ".typed"}, sorted(map(str, code))
    shipped_dev_tools = [str(path) for path in code if DEV_ONLY & set(path.parts)]
    assert not shipped_dev_tools
    assert PurePosixPath("ddc/cli.py") in code and PurePosixPath("dedup_service/cli.py") in code
