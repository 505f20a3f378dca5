"""The Dockerfile, without a Docker engine (scripts/test-stacks builds and runs it)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from devtools.harness.wheels import built_wheel, pip_wheel

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]
    ]


def test_runs_as_non_root_without_a_healthcheck_that_matches_no_daemon():
    """No daemon serves HTTP by default (`http_listen` unset), so an image-wide HEALTHCHECK would
    mark every container without the right URL "unhealthy": the stacks declare it per service."""
    (user,) = instructions("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert instructions("HEALTHCHECK") == []
    code = "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    assert "curl" not in code and "wget" not in code
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE  # nothing written under a read-only root


def test_base_image_is_a_build_argument_and_no_anonymous_volume():
    (arg,) = [a for a in instructions("ARG") if a.startswith("BASE_IMAGE=")]
    assert arg == "BASE_IMAGE=python:3.11-slim"  # scripts/test-stacks builds this tag locally
    assert instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    assert instructions("VOLUME") == []  # every container would leave an anonymous volume


def test_dependencies_are_pinned_by_the_constraints_of_the_tested_venv():
    from tests.stacks.constraints import IMAGE_EXTRAS, pins, runtime_requirements

    runs = instructions("RUN")
    extras = ",".join(IMAGE_EXTRAS)
    assert any("pip wheel" in run and f'".[{extras}]"' in run for run in runs)
    assert any("pip install" in run and f'"ddc[{extras}]"' in run for run in runs)
    assert any("pip wheel" in run and "--constraint constraints.txt" in run for run in runs)
    assert any("pip install" in run and "--no-index" in run for run in runs)
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pinned = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    needed = pins()
    assert set(needed) <= set(pinned), "regenerate: python tests/stacks/constraints.py"
    for requirement in runtime_requirements():
        name = requirement.name.lower().replace("_", "-")
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name])


def test_stack_healthcheck_command_works_against_a_real_healthz():
    """The compose stacks' healthcheck (python one-liner), run against a real ddc HTTP server."""
    import yaml
    from gevent import subprocess as gsubprocess
    from prometheus_client import CollectorRegistry

    from ddc.http import HttpServer

    stacks = sorted((ROOT / "compose").glob("*.yml"))
    commands = {
        path.name: yaml.safe_load(path.read_text())["x-ddc"]["healthcheck"]["test"]
        for path in stacks
    }
    assert len(commands) == 5
    command = commands["single-pair.yml"]
    assert all(other == command for other in commands.values()), "one probe for every stack"
    assert command[0] == "CMD"
    command = command[1:]
    # no urllib.request (http.client, email, ssl): ~10x the probe's CPU, timeouts under load
    assert "urllib" not in command[-1] and command[1:3] == ["-I", "-S"]
    status = {"code": 200}
    server = HttpServer(
        ("127.0.0.1", 0),
        CollectorRegistry(),
        {("GET", "/healthz"): lambda: (status["code"], {"status": "ok"})},
    )
    server.start()
    try:
        env = {
            "DDC_HEALTHCHECK_URL": f"http://127.0.0.1:{server.address[1]}/healthz",
            "PATH": "/usr/bin:/bin",
        }
        command[0] = sys.executable
        assert gsubprocess.run(command, env=env, timeout=30).returncode == 0
        status["code"] = 503
        assert (
            gsubprocess.run(command, env=env, timeout=30, stderr=gsubprocess.DEVNULL).returncode
            != 0
        )
    finally:
        server.stop(0.5)


def test_build_context_has_what_the_copies_need():
    ignore = (ROOT / ".dockerignore").read_text().split()
    sources = []
    for copy in instructions("COPY"):
        if copy.startswith("--from"):
            continue
        sources.extend(copy.split()[:-1])
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert f"!{source.rstrip('/')}" in ignore or f"!{source.rstrip('/')}/" in ignore, source


@pytest.mark.timeout(180)
def test_the_copied_files_build_a_wheel_with_both_commands(tmp_path):
    """What the build stage does (`pip wheel .` on the COPYed files), minus the dependencies."""
    context = tmp_path / "src"
    context.mkdir()
    for copy in instructions("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _ = copy.split()
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(
                    path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(path, context / source)
    # the build backend from the test's environment: what is checked is the COPYed file list
    # (an isolated build fetched setuptools from the package index: about a minute)
    options = ("--no-build-isolation", "--disable-pip-version-check")
    result = pip_wheel(context, tmp_path / "wheels", *options, timeout=170)
    assert result.returncode == 0, result.stderr
    with built_wheel(tmp_path / "wheels") as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "ddc = ddc.cli:main" in text and "ddc-dedup = dedup_service.cli:main" in text
    assert "ddc/supervisor/service.py" in names and "ddc/topology/cli.py" in names
