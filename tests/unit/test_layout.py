"""The layout rules of docs/development.md, checked over the checkout.

* no runtime module (ddc/, dedup_service/) is longer than MAX_LINES: one concept per module;
* the runtime has no `# fmt: skip` (ruff format owns the layout) and no `# type: ignore` without
  an error code (mypy runs over it in scripts/test, so a silenced error names what it silences);
* nothing sends a reader to the design file the repository does not hold: docs/ is complete.

The wheel's contents are checked by test_wheel.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtools import ROOT

MAX_LINES = 400
RUNTIME = ("ddc", "dedup_service")
# where readers look: code, configs and manifests, scripts, the docs
READER_FACING = ("ddc", "dedup_service", "devtools", "tests", "compose", "k8s", "scripts", "docs")
READER_FACING_FILES = ("README.md",)
OUTSIDE_FILE = "DESIGN" + ".md"  # spelled apart so that this file does not match itself
BARE_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?!\[)")
FMT_SKIP = re.compile(r"#\s*fmt:\s*(skip|off)")


def runtime_modules() -> list[Path]:
    return sorted(path for top in RUNTIME for path in (ROOT / top).rglob("*.py"))


def reader_facing_files() -> list[Path]:
    files = [ROOT / name for name in READER_FACING_FILES]
    for top in READER_FACING:
        files += (path for path in (ROOT / top).rglob("*") if path.is_file())
    return sorted(path for path in files if "__pycache__" not in path.parts)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def lines_matching(paths: list[Path], pattern: re.Pattern[str]) -> list[str]:
    found = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files hold no references a reader follows
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f"{relative(path)}:{number}: {line.strip()}")
    return found


def test_the_runtime_is_where_the_checks_look():
    modules = {relative(path) for path in runtime_modules()}
    assert {"ddc/cli.py", "dedup_service/cli.py", "ddc/protocol/wire.py"} <= modules
    assert ROOT / "README.md" in reader_facing_files()


def test_no_runtime_module_is_over_the_line_limit():
    long = {}
    for path in runtime_modules():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES:
            long[relative(path)] = count
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


@pytest.mark.parametrize("pattern", [FMT_SKIP, BARE_TYPE_IGNORE], ids=["fmt-skip", "type-ignore"])
def test_no_formatter_or_type_checker_escapes_in_the_runtime(pattern):
    assert not lines_matching(runtime_modules(), pattern)


def test_no_reference_to_a_design_file_outside_the_repository():
    pattern = re.compile(re.escape(OUTSIDE_FILE))
    assert not lines_matching(reader_facing_files(), pattern)


@pytest.mark.parametrize(
    ("line", "pattern", "matches"),
    [
        ("x = 1  # fmt: skip", FMT_SKIP, True),
        ("# fmt: off", FMT_SKIP, True),
        ("import zfec  # type: ignore", BARE_TYPE_IGNORE, True),
        ("import zfec  # type:ignore  # why", BARE_TYPE_IGNORE, True),
        ("import zfec  # type: ignore[import-untyped]", BARE_TYPE_IGNORE, False),
        ("x: int = 1  # a type annotation", BARE_TYPE_IGNORE, False),
    ],
)
def test_the_patterns_catch_what_they_are_for(line, pattern, matches):
    assert bool(pattern.search(line)) is matches
