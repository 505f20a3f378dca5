"""The image's pinned dependencies: the runtime requirements of setup.cfg (with the extras the
image installs), transitively, at the
versions installed in the venv that runs this (the venv the test suite passed with).

    python tests/stacks/constraints.py > constraints.txt
"""

from __future__ import annotations

import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
HEADER = """\
# Pinned runtime dependencies of the image: the Dockerfile installs with `-c constraints.txt`.
# The versions of the venv the test suite passed with; regenerate after changing install_requires
# or upgrading the venv:  python tests/stacks/constraints.py > constraints.txt
"""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


IMAGE_EXTRAS = ("librdkafka",)  # the extras the Dockerfile installs: ddc[librdkafka]


def runtime_requirements() -> list[Requirement]:
    """install_requires and the image's extras."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in IMAGE_EXTRAS:
        lines += config["options.extras_require"][extra].splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def pins() -> dict[str, str]:
    """name → installed version of every runtime requirement, transitively."""
    found: dict[str, str] = {}
    todo = runtime_requirements()
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = normalise(requirement.name)
        if name in found:
            continue
        distribution = metadata.distribution(requirement.name)
        found[name] = distribution.version
        todo.extend(Requirement(text) for text in distribution.requires or [])
    return found


def render() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins().items()))


if __name__ == "__main__":
    sys.stdout.write(render())
